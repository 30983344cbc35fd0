//! The trainer's typed command line against this binary's own parser, and the `--json` lines.

use clap::Parser as _;
use sightline_core::manifest::Task;
use sightline_workflows::train::{
    BatchEvent, Losses, Overrides, TrainEvent, TrainInvocation, TrainOptions,
};

use crate::{Cli, Command};

/// Parses rendered arguments with `sightline`'s parser and reads the invocation back.
fn parse_back(inv: &TrainInvocation) -> TrainInvocation {
    let mut argv = vec![std::ffi::OsString::from("sightline")];
    argv.extend(inv.to_args());
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => panic!("{argv:?} does not parse: {e}"),
    };
    let Command::Train(args) = cli.command else {
        panic!("{argv:?} is not `sightline train`");
    };
    TrainInvocation {
        json: cli.global.json,
        home: cli.global.home,
        options: args.options(),
    }
}

#[test]
fn invocations_round_trip_through_the_cli_parser() {
    let server = TrainInvocation {
        json: true,
        home: Some("/data/home".into()),
        options: TrainOptions {
            config: Some("/data/home/jobs/abc/config.yaml".into()),
            dataset: "0123abcd".into(),
            weights: Some("none".into()),
            ..TrainOptions::new(Task::Segment)
        },
    };
    let every_override = TrainInvocation {
        json: true,
        home: Some("/h with space".into()),
        options: TrainOptions {
            task: Task::Classify,
            config: Some("cfg/widgets.yaml".into()),
            dataset: "latest".into(),
            overrides: Overrides {
                epochs: Some(3),
                imgsz: Some(96),
                batch_size: Some(8),
                seed: Some(42),
            },
            device: "cuda:1".into(),
            workers: 4,
            weights: Some("/w/model.safetensors".into()),
            resume: None,
            save_record: true,
        },
    };
    let imagenet = TrainInvocation {
        json: false,
        home: None,
        options: TrainOptions {
            config: Some("m.yaml".into()),
            weights: Some("imagenet".into()),
            overrides: Overrides {
                seed: Some(0),
                ..Overrides::default()
            },
            ..TrainOptions::new(Task::Classify)
        },
    };
    let resume = TrainInvocation {
        json: true,
        home: Some("/h".into()),
        options: TrainOptions {
            resume: Some("20261129-001500".into()),
            overrides: Overrides {
                epochs: Some(5),
                ..Overrides::default()
            },
            workers: 2,
            ..TrainOptions::new(Task::Segment)
        },
    };
    for inv in [server, every_override, imagenet, resume] {
        assert_eq!(parse_back(&inv), inv, "{:?}", inv.to_args());
    }
}

#[test]
fn json_batch_events_are_thinned() {
    let batch = |batch, batches| {
        TrainEvent::Batch(BatchEvent {
            epoch: 0,
            epochs: 1,
            batch,
            batches,
            losses: Losses(vec![("box".into(), 1.0)]),
        })
    };
    let shown: Vec<usize> = (0..25)
        .filter(|&b| super::progress::printed(&batch(b, 25)))
        .collect();
    assert_eq!(shown, vec![9, 19, 24]);
}
