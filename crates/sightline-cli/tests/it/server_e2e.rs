//! End to end: the real `sightline` binary applies a project, registers two detector versions
//! from the fixture checkpoint, refuses an ungated promotion, serves on a free port, inspects
//! images while the production alias moves (through the CLI, picked up by the server's alias
//! polling) with zero failed requests, and finds every request in the history. SQLite and
//! PostgreSQL (fresh database; fails if the server is unreachable).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use sightline_testkit::{
    KillOnDrop as Server, Sightline, TestDatabase, fixtures, http, spawn_server,
};

use crate::support::{SIGHTLINE, redactions};

const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
  business_rules:
    max_ng_ratio: 0.5
    allow_unknown: false
";

struct Env {
    home: tempfile::TempDir,
    db_url: String,
}

impl Env {
    fn bin(&self) -> Sightline {
        Sightline::with_env_home(SIGHTLINE, self.home.path(), &self.db_url)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.bin().command(args)
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let r = self.bin().run(args);
        (r.success(), r.stdout, r.stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.bin().ok(args)
    }
}

fn start_server(env: &Env) -> (Server, String) {
    spawn_server(env.cmd(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--poll-ms",
        "200",
        "--max-batch",
        "4",
    ]))
}

fn wait_serving(addr: &str, version: i64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let (_, h) = http(addr, "GET", "/health", "text/plain", b"");
        if h["deployments"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["serving_version"] == version))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server never served version {version}");
}

fn lifecycle(db_url: String) {
    let env = Env {
        home: tempfile::tempdir().unwrap(),
        db_url,
    };
    let cfg = env.home.path().join("widget.yaml");
    fs_err::write(&cfg, MANIFEST).unwrap();
    let cfg = cfg.to_str().unwrap();
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    assert!(ckpt.is_file(), "missing fixture {}", ckpt.display());
    let ckpt = ckpt.to_str().unwrap();
    env.ok(&["project", "apply", cfg]);
    let v1: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        cfg,
        "--checkpoint",
        ckpt,
        "--note",
        "first",
    ]))
    .unwrap();
    assert_eq!(v1["version"], 1);
    let v2: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        cfg,
        "--checkpoint",
        ckpt,
        "--alias",
        "staging",
    ]))
    .unwrap();
    assert_eq!(v2["version"], 2);
    let list: Value =
        serde_json::from_str(&env.ok(&["--json", "model", "list", "--project", "widget_line_a"]))
            .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let snap = redactions(env.home.path());
    insta::assert_json_snapshot!("model_list", snap.apply(&list));
    // Gates: no evaluation recorded -> refused; --force is recorded.
    let (ok, _, err) = env.run(&[
        "model",
        "promote",
        "1",
        "--project",
        "widget_line_a",
        "--to",
        "production",
    ]);
    assert!(!ok && err.contains("no recorded evaluation"), "{err}");
    env.ok(&[
        "model",
        "promote",
        "1",
        "--project",
        "widget_line_a",
        "--to",
        "production",
        "--force",
    ]);
    let aliases: Value =
        serde_json::from_str(&env.ok(&["--json", "model", "alias", "list"])).unwrap();
    assert_eq!(aliases.as_array().unwrap().len(), 2, "{aliases}");
    insta::assert_json_snapshot!("model_alias_list", snap.apply(&aliases));

    let (server, addr) = start_server(&env);
    wait_serving(&addr, 1);
    let images: Vec<Vec<u8>> = ["val_00000.jpg", "val_00001.jpg", "wide_320x200.jpg"]
        .iter()
        .map(|n| fs_err::read(fixtures().join("images").join(n)).unwrap())
        .collect();
    // Concurrent load while the alias moves to v2 through the CLI.
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let addr = addr.clone();
            let images = images.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for i in 0..8 {
                    let (s, v) = http(
                        &addr,
                        "POST",
                        &format!("/projects/widget_line_a/inspect?lot=L{c}"),
                        "image/jpeg",
                        &images[(c + i) % images.len()],
                    );
                    assert_eq!(s, 200, "inspect failed: {v}");
                    seen.push(v["models"][0]["version"].as_i64().unwrap());
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&[
        "model",
        "promote",
        "2",
        "--project",
        "widget_line_a",
        "--to",
        "production",
        "--force",
    ]);
    let seen: Vec<i64> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    wait_serving(&addr, 2);
    let (s, v) = http(
        &addr,
        "POST",
        "/projects/widget_line_a/inspect",
        "image/jpeg",
        &images[0],
    );
    assert_eq!(
        (s, v["models"][0]["version"].as_i64()),
        (200, Some(2)),
        "{v}"
    );
    insta::assert_json_snapshot!("inspect_response", snap.apply(&v));
    let (s, health) = http(&addr, "GET", "/health", "text/plain", b"");
    assert_eq!(s, 200, "{health}");
    insta::assert_json_snapshot!("health", snap.apply(&health));
    let total = seen.len() as i64 + 1;
    // Every request reaches the history (the log writer is asynchronous).
    let start = Instant::now();
    loop {
        let (_, h) = http(
            &addr,
            "GET",
            "/history?project=widget_line_a&limit=1",
            "text/plain",
            b"",
        );
        if h["total"] == total {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "history has {} of {total}",
            h["total"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, h) = http(&addr, "GET", "/history?lot=L0", "text/plain", b"");
    assert_eq!(h["total"], 8);
    let (_, m) = http(&addr, "GET", "/metrics", "text/plain", b"");
    assert!(
        m.as_str()
            .unwrap()
            .contains("sightline_model_version{project=\"widget_line_a\",task=\"segment\"} 2")
    );
    drop(server);
}

#[test]
fn serve_register_promote_inspect_history_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(TestDatabase::sqlite(dir.path(), "e2e.db").url().to_string());
}

#[test]
fn serve_register_promote_inspect_history_postgres() {
    let t = TestDatabase::postgres();
    lifecycle(t.url().to_string());
}
