//! Ctrl-C on the real `sightline train` process: SIGINT after the first completed epoch keeps
//! the checkpoint (weights + optimiser state), records the experiment as `stopped`, tells how
//! to resume and exits 130; `--resume` then continues at the next epoch and completes.
//!
//! The signal is sent with the system's `kill -INT <pid>` (procps / coreutils, present wherever
//! the tests run), so no signal crate is needed as a dev-dependency.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use crate::support::train_env::{Env, done, metrics};

/// Kills the child if the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_keeps_the_checkpoint_exits_130_and_resume_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "classifier");
    env.tiny_data();
    // far more epochs than the test waits for: the run is interrupted after the first one
    let epochs = 50;
    let mut child = Child(
        env.command(&[
            "--json",
            "train",
            "classifier",
            "--config",
            "tiny.yaml",
            "--epochs",
            &epochs.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let mut stderr = child.0.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut events: Vec<serde_json::Value> = Vec::new();
    // read events until the first completed epoch, then interrupt
    for line in lines.by_ref() {
        let e: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let is_epoch = e["event"] == "epoch";
        events.push(e);
        if is_epoch {
            break;
        }
    }
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("epoch".into()),
        "the run ended before its first epoch: {events:?}"
    );
    let id = events[0]["experiment"].as_str().unwrap().to_string();
    let dir = env.experiments().join(&id);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for line in lines {
        events.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    let status = child.0.wait().unwrap();
    let err = stderr_reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}; stderr: {err}");

    let d = done(&events);
    assert_eq!(d["status"], "stopped", "{events:?}");
    let completed = metrics(&dir).len();
    assert!(
        (1..epochs).contains(&completed),
        "{completed} epochs recorded"
    );
    assert_eq!(
        events.iter().filter(|e| e["event"] == "epoch").count(),
        completed,
        "every completed epoch was reported"
    );
    for f in [
        "weights/last.safetensors",
        "weights/last.optim.safetensors",
        "weights/best.safetensors",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing after the interrupt");
    }
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        err.contains(&format!("sightline train classifier --resume {id}")),
        "{err}"
    );
    let db = sightline_db::Db::connect(&env.database_url).await.unwrap();
    let row = sightline_db::experiments::get(&db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, sightline_db::experiments::Status::Stopped);
    assert_eq!(row.epochs_completed, completed as i64);
    assert!(row.finished_at.is_some());

    // resume: continues at the next epoch and completes one more
    let total = (completed + 1).to_string();
    let ev = env.train(&["--resume", &id, "--epochs", &total]);
    assert_eq!(ev[0]["event"], "start");
    assert_eq!(ev[0]["resume_from_epoch"], completed);
    let epochs_run: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "epoch")
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs_run, vec![completed as u64]);
    assert_eq!(done(&ev)["status"], "completed");
    assert_eq!(metrics(&dir).len(), completed + 1);
    let row = sightline_db::experiments::get(&db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, sightline_db::experiments::Status::Completed);
    assert_eq!(row.epochs_completed, completed as i64 + 1);
}
