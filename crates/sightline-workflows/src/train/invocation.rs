//! The trainer's command line: what the server runs as its child process
//! (`sightline --json --home <home> train detector|classifier …`).
//!
//! [`TrainInvocation`] renders the arguments ([`TrainInvocation::to_args`]); the CLI's tests
//! parse them back with the binary's own clap parser and compare the result with the
//! invocation, so the two sides cannot drift apart.

use std::ffi::OsString;
use std::path::PathBuf;

use sightline_core::Task;

use super::TrainOptions;

/// One run of `sightline train` as a child process.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainInvocation {
    /// `--json`: progress as [`super::TrainEvent`] lines on stdout.
    pub json: bool,
    /// `--home`: the data directory.
    pub home: Option<PathBuf>,
    /// What to train and how.
    pub options: TrainOptions,
}

impl TrainInvocation {
    /// The arguments after the program name, in the order the server has always used:
    /// `--json --home H train <task> --config C --dataset D --device X --workers N
    /// --weights W [--epochs E] [--imgsz S] [--batch-size B] [--seed N] [--resume R]
    /// [--save-record]` (absent options are left out).
    pub fn to_args(&self) -> Vec<OsString> {
        let o = &self.options;
        let mut a: Vec<OsString> = Vec::new();
        if self.json {
            a.push("--json".into());
        }
        if let Some(home) = &self.home {
            a.push("--home".into());
            a.push(home.into());
        }
        a.push("train".into());
        a.push(subcommand(o.task).into());
        if let Some(config) = &o.config {
            a.push("--config".into());
            a.push(config.into());
        }
        a.push("--dataset".into());
        a.push(o.dataset.clone().into());
        a.push("--device".into());
        a.push(o.device.clone().into());
        a.push("--workers".into());
        a.push(o.workers.to_string().into());
        if let Some(w) = &o.weights {
            a.push("--weights".into());
            a.push(w.into());
        }
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.into());
                a.push(v.into());
            }
        };
        opt("--epochs", o.overrides.epochs.map(|v| v.to_string()));
        opt("--imgsz", o.overrides.imgsz.map(|v| v.to_string()));
        opt(
            "--batch-size",
            o.overrides.batch_size.map(|v| v.to_string()),
        );
        opt("--seed", o.overrides.seed.map(|v| v.to_string()));
        opt("--resume", o.resume.clone());
        if o.save_record {
            a.push("--save-record".into());
        }
        a
    }
}

/// The `sightline train` subcommand of a task (`detector` or `classifier`).
pub fn subcommand(task: Task) -> &'static str {
    match task {
        Task::Segment => "detector",
        Task::Classify => "classifier",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Overrides;

    #[test]
    fn renders_the_servers_command_line() {
        let inv = TrainInvocation {
            json: true,
            home: Some("/h".into()),
            options: TrainOptions {
                task: Task::Segment,
                config: Some("/h/jobs/1/config.yaml".into()),
                dataset: "abc".into(),
                overrides: Overrides {
                    epochs: Some(2),
                    imgsz: None,
                    batch_size: Some(4),
                    seed: None,
                },
                weights: Some("none".into()),
                ..TrainOptions::new(Task::Segment)
            },
        };
        let args: Vec<String> = inv
            .to_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "--json --home /h train detector --config /h/jobs/1/config.yaml --dataset abc \
             --device cpu --workers 0 --weights none --epochs 2 --batch-size 4"
        );
    }
}
