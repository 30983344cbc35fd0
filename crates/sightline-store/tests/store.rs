//! Local store: put/get/exists/list/delete, hashes, key safety, and atomicity under a killed
//! writer (this test binary re-runs itself as the writer child and is killed mid-write).

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sightline_store::{ArtifactStore, Key, LocalStore, StoreError, layout};

const CHILD_ROOT: &str = "SIGHTLINE_STORE_TEST_CHILD_ROOT";
const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 400; // 25 MiB, written slowly

/// Yields `CHUNKS` chunks of a fixed byte, sleeping before each: a slow producer.
struct SlowReader {
    left: usize,
    byte: u8,
}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(20));
        self.left -= 1;
        let n = buf.len().min(CHUNK);
        buf[..n].fill(self.byte);
        Ok(n)
    }
}

/// Not a test on its own: when the parent sets `CHILD_ROOT`, write `big.bin` slowly.
#[test]
fn writer_child() {
    let Ok(root) = std::env::var(CHILD_ROOT) else {
        return;
    };
    let store = LocalStore::new(root);
    let key = Key::new("experiments/run/weights/big.bin").unwrap();
    store
        .put_reader(
            &key,
            &mut SlowReader {
                left: CHUNKS,
                byte: 7,
            },
        )
        .unwrap();
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    match fs_err::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".sightline-tmp-")
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn kill_writer_mid_way(root: &Path) {
    let dir = root.join("experiments/run/weights");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROOT, root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the writer has put real bytes into its temporary file, then kill it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tmp = temp_files(&dir);
        if let Some(t) = tmp.first()
            && fs_err::metadata(t).map(|m| m.len()).unwrap_or(0) >= (4 * CHUNK) as u64
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer finished before it was killed"
        );
        assert!(
            Instant::now() < deadline,
            "the writer never started writing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn killed_writer_leaves_no_partial_file() {
    let root = tempfile::tempdir().unwrap();
    kill_writer_mid_way(root.path());
    let final_path = root.path().join("experiments/run/weights/big.bin");
    assert!(
        !final_path.exists(),
        "a partial file appeared under the final name"
    );
    // the interrupted temporary file is there (proof the kill was mid-write) but never listed
    assert_eq!(temp_files(final_path.parent().unwrap()).len(), 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = ArtifactStore::local(root.path());
    let key = Key::new("experiments/run/weights/big.bin").unwrap();
    assert!(!rt.block_on(store.exists(&key)).unwrap());
    assert!(rt.block_on(store.list("")).unwrap().is_empty());
}

#[test]
fn killed_overwrite_keeps_the_previous_file() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalStore::new(root.path());
    let key = Key::new("experiments/run/weights/big.bin").unwrap();
    let before = store
        .put_reader(&key, &mut &b"previous checkpoint"[..])
        .unwrap();
    kill_writer_mid_way(root.path());
    assert_eq!(store.get(&key).unwrap(), b"previous checkpoint");
    assert_eq!(
        sightline_store::sha256_file(&store.path_of(&key)).unwrap(),
        before.sha256
    );
}

#[tokio::test]
async fn put_get_list_delete() {
    let root = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(root.path().join("artifacts"));
    let run = layout::new_experiment(&store, chrono::Utc::now())
        .await
        .unwrap();
    assert!(run.as_str().starts_with("experiments/"));
    let metrics = run.join("metrics.json").unwrap();
    let info = store.put(&metrics, b"abc").await.unwrap();
    // sha256("abc"), the FIPS 180-2 test vector
    assert_eq!(
        info.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(info.size, 3);
    assert_eq!(store.get(&metrics).await.unwrap(), b"abc");
    assert!(store.exists(&metrics).await.unwrap());
    assert_eq!(
        store.local_path(&metrics).unwrap(),
        root.path().join("artifacts").join(metrics.as_str())
    );

    // overwrite replaces, hash follows the content
    let info2 = store.put(&metrics, b"abcd").await.unwrap();
    assert_ne!(info2.sha256, info.sha256);
    assert_eq!(store.get(&metrics).await.unwrap(), b"abcd");

    // the same second gives a new folder once the first is used
    let run2 = layout::new_experiment(&store, chrono::Utc::now())
        .await
        .unwrap();
    assert_ne!(run2, run);

    let src = root.path().join("best.bin");
    fs_err::write(&src, vec![1u8; 3_000_000]).unwrap();
    let best = run.join("weights/best").unwrap();
    let info = store.put_file(&best, &src).await.unwrap();
    assert_eq!(info.size, 3_000_000);
    assert_eq!(info.sha256, sightline_store::sha256_file(&src).unwrap());
    let report = layout::report("m-v1/report.json").unwrap();
    store.put(&report, b"{}").await.unwrap();

    let all: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key.to_string())
        .collect();
    assert_eq!(
        all,
        [metrics.to_string(), best.to_string(), report.to_string()]
    );
    let runs = store.list(run.as_str()).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(store.list("reports").await.unwrap()[0].size, 2);
    assert!(store.list("nothing/here").await.unwrap().is_empty());

    let out = root.path().join("copy/best.bin");
    let got = store.get_to_file(&best, &out).await.unwrap();
    assert_eq!(got.sha256, info.sha256);

    store.delete(&metrics).await.unwrap();
    assert!(!store.exists(&metrics).await.unwrap());
    assert!(matches!(
        store.delete(&metrics).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get(&metrics).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn traversal_keys_are_rejected_before_touching_disk() {
    let root = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(root.path().join("a"));
    assert!(Key::new("../outside").is_err());
    assert!(Key::new("/etc/passwd").is_err());
    assert!(matches!(store.list("../").await, Err(StoreError::Key(_))));
    assert!(!root.path().join("outside").exists());
}

#[test]
fn s3_store_is_built_from_settings() {
    let s =
        sightline_core::Settings::resolve_with(Path::new("/tmp"), None, Default::default(), &|k| {
            match k {
                "SIGHTLINE_S3_BUCKET" => Some("models".into()),
                "SIGHTLINE_S3_PREFIX" => Some("line-a".into()),
                "SIGHTLINE_S3_ENDPOINT" => Some("http://127.0.0.1:9".into()),
                "SIGHTLINE_S3_REGION" => Some("us-east-1".into()),
                "SIGHTLINE_S3_ALLOW_HTTP" => Some("1".into()),
                _ => None,
            }
        })
        .unwrap();
    let store = ArtifactStore::from_settings(&s.artifacts).unwrap();
    assert_eq!(store.describe(), "s3://models/line-a");
    assert!(store.local_path(&Key::new("x").unwrap()).is_none());
}
