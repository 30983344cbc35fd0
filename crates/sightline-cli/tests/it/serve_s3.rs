//! End to end with an S3 artifact store: machine A registers detector versions with the real
//! `sightline` binary into a bucket of a real S3 API (a `moto_server` child process; install with
//! `python3 -m pip install 'moto[server]'`, pinned in .ci/requirements-test.txt,
//! `$MOTO_SERVER_BIN` overrides the command; the test FAILS when it is missing); machine B (another
//! home and working folder, sharing only the database) serves them, fetching each bundle from S3
//! into its cache and verifying it. A version whose object was tampered with in S3 is refused with
//! a checksum error and the previous version keeps serving.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use sightline_testkit::{KillOnDrop, Sightline, fixtures, free_port, http, spawn_server};

use crate::support::SIGHTLINE;

const BUCKET: &str = "sightline-e2e";
const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
";

fn start_moto() -> (KillOnDrop, String) {
    let bin = std::env::var("MOTO_SERVER_BIN").unwrap_or_else(|_| "moto_server".into());
    let port = free_port();
    let child: Child = Command::new(&bin)
        .args(["-p", &port.to_string(), "-H", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{bin}` (install the S3 test server: python3 -m pip install 'moto[server]'): {e}"
            )
        });
    let mut moto = KillOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    // Readiness: the server accepts connections once it is listening.
    for _ in 0..600 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return (moto, addr);
        }
        if let Ok(Some(exit)) = moto.0.try_wait() {
            panic!("`{bin}` exited with {exit} before listening");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("`{bin}` did not start listening on {addr}");
}

/// One machine: its own home and working folder; the database and the bucket are shared.
struct Machine {
    dir: PathBuf,
    db_url: String,
    s3: String,
}

impl Machine {
    fn bin(&self) -> Sightline {
        Sightline::with_env_home(SIGHTLINE, &self.dir, &self.db_url)
            .env("SIGHTLINE_ARTIFACTS_BACKEND", "s3")
            .env("SIGHTLINE_S3_BUCKET", BUCKET)
            .env("SIGHTLINE_S3_PREFIX", "line-a")
            .env("SIGHTLINE_S3_ENDPOINT", format!("http://{}", self.s3))
            .env("SIGHTLINE_S3_REGION", "us-east-1")
            .env("SIGHTLINE_S3_ALLOW_HTTP", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.bin().command(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.bin().ok(args)
    }

    fn register(&self, cfg: &str, ckpt: &str, alias: &str) -> Value {
        serde_json::from_str(&self.ok(&[
            "--json",
            "register",
            "--config",
            cfg,
            "--checkpoint",
            ckpt,
            "--alias",
            alias,
        ]))
        .unwrap()
    }
}

fn deployments(addr: &str) -> Value {
    http(addr, "GET", "/deployments", "text/plain", b"").1
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn register_on_one_machine_serve_from_s3_on_another() {
    let (_moto, s3) = start_moto();
    let (status, body) = http(&s3, "PUT", &format!("/{BUCKET}"), "text/plain", b"");
    assert_eq!(status, 200, "creating the bucket: {body}");

    let tmp = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", tmp.path().join("shared.db").display());
    let machine = |name: &str| {
        let dir = tmp.path().join(name);
        fs_err::create_dir_all(&dir).unwrap();
        Machine {
            dir,
            db_url: db_url.clone(),
            s3: s3.clone(),
        }
    };
    let (a, b) = (machine("a"), machine("b"));
    let cfg = a.dir.join("widget.yaml");
    fs_err::write(&cfg, MANIFEST).unwrap();
    let cfg = cfg.to_str().unwrap();
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    assert!(ckpt.is_file(), "missing fixture {}", ckpt.display());
    let ckpt = ckpt.to_str().unwrap();

    a.ok(&["project", "apply", cfg]);
    let v1 = a.register(cfg, ckpt, "production");
    assert_eq!(v1["version"], 1);
    assert!(
        !a.dir.join("artifacts").exists(),
        "the bundle went to S3, not to a local folder: {:?}",
        files_under(&a.dir)
    );

    // Machine B serves v1, fetched from S3 into its cache.
    let (server, addr) =
        spawn_server(b.cmd(&["serve", "--addr", "127.0.0.1:0", "--poll-ms", "200"]));
    let wait = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            let d = deployments(&addr);
            if pred(&d) {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{what}: {}", deployments(&addr));
    };
    wait(&|d| d[0]["serving_version"] == 1, "v1 never served");
    let cached = b
        .dir
        .join(".sightline/cache/bundles/registry/widget_line_a/segment/v1");
    assert_eq!(
        files_under(&cached),
        // model.onnx: the registration's checked ONNX export (ONNX Runtime is set up in CI)
        // travels through the bucket and is verified like the weights
        vec!["bundle.json", "model.onnx", "weights.pt"],
        "verified copy in B's cache"
    );
    let image = fs_err::read(fixtures().join("images/val_00000.jpg")).unwrap();
    let (status, v) = http(
        &addr,
        "POST",
        "/projects/widget_line_a/inspect",
        "image/jpeg",
        &image,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["models"][0]["version"], 1, "{v}");

    // v2's weights are replaced in S3 after registration: B refuses it, v1 keeps serving.
    let v2 = a.register(cfg, ckpt, "staging");
    assert_eq!(v2["version"], 2);
    // Replaced through the S3 API with boto3 (installed with moto; requests must be signed).
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='http://{s3}', region_name='us-east-1',\n\
         aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         s3.put_object(Bucket='{BUCKET}', Key='line-a/registry/widget_line_a/segment/v2/weights.pt', Body=b'not the registered weights')\n"
    );
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tampering with the object through boto3 (comes with moto[server]) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.ok(&[
        "model",
        "promote",
        "2",
        "--project",
        "widget_line_a",
        "--to",
        "production",
        "--force",
    ]);
    let d = wait(
        &|d| d[0]["last_error"]["model_version_id"] == v2["id"],
        "the failed deployment was never reported",
    );
    let message = d[0]["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("checksum mismatch")
            && message
                .contains("s3://sightline-e2e/line-a/registry/widget_line_a/segment/v2/weights.pt"),
        "{message}"
    );
    assert_eq!(d[0]["serving_version"], 1, "{d}");
    let (status, v) = http(
        &addr,
        "POST",
        "/projects/widget_line_a/inspect",
        "image/jpeg",
        &image,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["models"][0]["version"], 1, "{v}");
    assert!(
        !b.dir
            .join(".sightline/cache/bundles/registry/widget_line_a/segment/v2")
            .exists(),
        "no unverified copy in the cache"
    );
    drop(server);
}
