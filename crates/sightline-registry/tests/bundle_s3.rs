//! Deployment bundles in a real S3 API: a `moto_server` child process (install with
//! `python3 -m pip install 'moto[server]'`, pinned in .ci/requirements-test.txt; `$MOTO_SERVER_BIN`
//! overrides the command). The test FAILS when moto_server is missing.
//!
//! The store takes its credentials from the `AWS_*` environment and its bucket from
//! `SIGHTLINE_S3_*`, as the CLI does; a test may not change its own environment, so the
//! parent test starts moto, creates the bucket and re-runs this binary's `s3_child` test with
//! that environment.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sightline_core::{Manifest, Settings, Task};
use sightline_registry::{RegisterRequest, Registry, RegistryError};
use sightline_store::{ArtifactStore, Key};

const CHILD: &str = "SIGHTLINE_TEST_S3_CHILD";
const BUCKET: &str = "sightline-bundles";
const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng]
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
    hyperparameters: {imgsz: 64}
";

/// Kills the moto server when the test ends, however it ends.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One plain HTTP/1.1 request; returns the status line.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.lines().next().unwrap_or_default().to_string())
}

fn start_moto() -> (Moto, u16) {
    let bin = std::env::var("MOTO_SERVER_BIN").unwrap_or_else(|_| "moto_server".into());
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-p", &port.to_string(), "-H", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{bin}` (install the S3 test server: python3 -m pip install 'moto[server]'): {e}"
            )
        });
    let mut moto = Moto(child);
    // Readiness: the server answers once it is listening (startup takes a few seconds).
    for _ in 0..600 {
        if let Ok(status) = http(port, "GET", "/") {
            assert!(status.contains("200"), "moto_server answered {status}");
            return (moto, port);
        }
        if let Ok(Some(exit)) = moto.0.try_wait() {
            panic!("`{bin}` exited with {exit} before listening");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("`{bin}` did not start listening on port {port}");
}

#[test]
fn s3_bundles_register_fetch_verify() {
    let (_moto, port) = start_moto();
    let status = http(port, "PUT", &format!("/{BUCKET}")).unwrap();
    assert!(status.contains("200"), "creating the bucket: {status}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "s3_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SIGHTLINE_ARTIFACTS_BACKEND", "s3")
        .env("SIGHTLINE_S3_BUCKET", BUCKET)
        .env("SIGHTLINE_S3_PREFIX", "line-a")
        .env("SIGHTLINE_S3_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("SIGHTLINE_S3_REGION", "us-east-1")
        .env("SIGHTLINE_S3_ALLOW_HTTP", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "S3 child test failed:\n{text}");
    assert!(
        text.contains("s3 child: done"),
        "the child did not run:\n{text}"
    );
}

/// The S3 workflow; runs only as the child of `s3_bundles_register_fetch_verify`.
#[tokio::test]
async fn s3_child() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::resolve(tmp.path(), None, Default::default()).unwrap();
    let store = ArtifactStore::from_settings(&settings.artifacts).unwrap();
    assert_eq!(store.describe(), format!("s3://{BUCKET}/line-a"));

    let t = sightline_db::testing::fresh_sqlite().await.unwrap();
    let manifest = Manifest::parse(MANIFEST, "test.yaml").unwrap();
    sightline_db::projects::apply(&t.db, &manifest, MANIFEST, false)
        .await
        .unwrap();
    let ckpt = tmp.path().join("best.safetensors");
    let tensor = sightline_torch::TensorF32 {
        shape: vec![64],
        data: (0..64).map(|i| i as f32).collect(),
        dtype: sightline_torch::DType::F32,
    };
    sightline_torch::save_safetensors(&ckpt, [("w", &tensor)], &Default::default()).unwrap();
    let ckpt_bytes = fs_err::read(&ckpt).unwrap();

    let local = tmp.path().join("artifacts");
    let cache = tmp.path().join("home/cache/bundles");
    let reg = Registry::new(t.db.clone(), local.clone()).with_store(store.clone(), cache.clone());
    let v1 = reg
        .register(RegisterRequest {
            manifest: manifest.clone(),
            task: Some(Task::Classify),
            checkpoint: ckpt.clone(),
            experiment_id: None,
            dataset_version: None,
            evaluation_report: None,
            note: None,
            alias: Some("production".into()),
            actor: "test".into(),
            onnx: None,
        })
        .await
        .unwrap();
    assert!(
        !local.exists(),
        "nothing written to the local artifact folder"
    );
    let keys: Vec<String> = store
        .list("registry")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key.to_string())
        .collect();
    assert_eq!(
        keys,
        vec![
            "registry/widget_line_a/classify/v1/bundle.json",
            "registry/widget_line_a/classify/v1/weights.safetensors",
        ]
    );

    // Fetched from S3 into the cache, verified.
    let bundle = reg.fetch_bundle(&v1).await.unwrap();
    assert_eq!(bundle.dir, cache.join("registry/widget_line_a/classify/v1"));
    assert_eq!(fs_err::read(bundle.weights_path()).unwrap(), ckpt_bytes);
    assert_eq!(bundle.manifest.files[0].sha256, v1.checkpoint_sha256);

    // Another machine (empty cache) gets the same bundle from S3.
    fs_err::remove_dir_all(&cache).unwrap();
    let again = reg.fetch_bundle(&v1).await.unwrap();
    assert_eq!(again.manifest, bundle.manifest);
    assert_eq!(fs_err::read(again.weights_path()).unwrap(), ckpt_bytes);

    // Tampered object in S3 (same size): a clear checksum error naming the object, and no
    // copy in the cache for a loader to pick up.
    let weights_key = Key::new("registry/widget_line_a/classify/v1/weights.safetensors").unwrap();
    let mut bad = ckpt_bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    store.put(&weights_key, &bad).await.unwrap();
    fs_err::remove_dir_all(&cache).unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "s3://{BUCKET}/line-a/registry/widget_line_a/classify/v1/weights.safetensors"
        )),
        "{msg}"
    );
    assert!(msg.contains(&v1.checkpoint_sha256), "{msg}");
    assert!(!cache.join("registry/widget_line_a/classify/v1").exists());

    // Missing object.
    store.delete(&weights_key).await.unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::BundleFileMissing(_)),
        "{err:?}"
    );
    assert_no_staging(&cache);
    println!("s3 child: done");
}

fn assert_no_staging(cache: &Path) {
    let dir = cache.join("registry/widget_line_a/classify");
    let left: Vec<_> = fs_err::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}
