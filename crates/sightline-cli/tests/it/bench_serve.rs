//! `sightline bench serve` against a real `sightline serve` (SQLite, the MobileNetV3 fixture
//! classifier): the report counts every request, no errors, ordered percentiles, and the server's
//! history holds the warm-up plus the timed requests. A project without a deployed model fails
//! fast in the warm-up with the server's message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use sightline_testkit::{Sightline, fixtures, spawn_server};

use crate::support::SIGHTLINE;

const MANIFEST: &str = "project: bench_line
labels: [ok, ng, scratch, dent]
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
";

struct Env {
    home: tempfile::TempDir,
    db_url: String,
}

impl Env {
    fn bin(&self) -> Sightline {
        Sightline::with_env_home(SIGHTLINE, self.home.path(), &self.db_url)
            .env_remove("SIGHTLINE_DATABASE_URL")
            .env_remove("SIGHTLINE_API_TOKEN")
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

fn get(addr: &str, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("chunked"),
        "unexpected chunked reply"
    );
    serde_json::from_str(body).unwrap()
}

#[test]
fn bench_serve_reports_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        home: tempfile::tempdir().unwrap(),
        db_url: format!("sqlite://{}", dir.path().join("b.db").display()),
    };
    let cfg = env.home.path().join("bench.yaml");
    fs_err::write(&cfg, MANIFEST).unwrap();
    let cfg = cfg.to_str().unwrap();
    env.ok(&["project", "apply", cfg]);
    let ckpt = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    env.ok(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--alias",
        "production",
    ]);
    let (_server, addr) = spawn_server(env.cmd(&["serve", "--addr", "127.0.0.1:0"]));
    let start = Instant::now();
    while !get(&addr, "/health")["deployments"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["serving_version"] == 1))
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never deployed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("http://{addr}");
    let image = fixtures().join("images/val_00001.jpg");
    let report: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "bench",
        "serve",
        "--url",
        &url,
        "--project",
        "bench_line",
        "--image",
        image.to_str().unwrap(),
        "--concurrency",
        "4",
        "--requests",
        "20",
        "--query",
        "lot=bench",
    ]))
    .unwrap();
    assert_eq!(report["requests"], 20, "{report}");
    assert_eq!(report["succeeded"], 20, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let l = &report["latency_ms"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"));
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0);
    // 4 warm-up + 20 timed requests, all logged (the log writer is asynchronous).
    let start = Instant::now();
    loop {
        let h = get(&addr, "/history?lot=bench&limit=1");
        if h["total"] == 24 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "history: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Human output, and a project without a model: the warm-up fails with the server's reason.
    let (ok, out, err) = env.run(&[
        "bench",
        "serve",
        "--url",
        &url,
        "--project",
        "nope",
        "--image",
        image.to_str().unwrap(),
        "--requests",
        "3",
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("warm-up request") && err.contains("HTTP "),
        "{err}"
    );
}
