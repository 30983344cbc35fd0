//! `sightline dataset …` driving the real binary on widgets-a: ingest (folder, archive over a
//! local HTTP server with resume and SHA-256), list/show/stats/diff/export/checkout, bad input
//! that must leave nothing behind, and the database records on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_testkit::Sightline;

use crate::support::{SIGHTLINE, redactions};

/// The fixtures folder, which must hold `widgets-a`.
fn fixtures() -> PathBuf {
    sightline_testkit::fixture("widgets-a");
    sightline_testkit::fixtures()
}

fn seed() -> PathBuf {
    sightline_testkit::seed_manifest()
}

struct Env {
    home: PathBuf,
    database_url: Option<String>,
}

impl Env {
    fn new(home: &Path, database_url: Option<String>) -> Self {
        fs_err::create_dir_all(home).unwrap();
        let e = Env {
            home: home.to_path_buf(),
            database_url,
        };
        e.ok(&["project", "apply", seed().to_str().unwrap()]);
        e
    }

    fn run(&self, args: &[&str]) -> Output {
        Sightline::with_flags(SIGHTLINE, &self.home, self.database_url.as_deref()).output(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn data_area(&self) -> PathBuf {
        self.home.join("projects/widget_line_a/datasets")
    }

    fn versions_on_disk(&self) -> usize {
        fs_err::read_dir(self.data_area().join("versions"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

const P: [&str; 2] = ["--project", "widget_line_a"];

fn lifecycle(env: &Env) {
    let w = fixtures().join("widgets-a");
    let v1 = env.json(&[
        "dataset",
        "ingest",
        w.to_str().unwrap(),
        P[0],
        P[1],
        "-m",
        "coco",
    ]);
    assert_eq!(v1["created"], true);
    let id1 = v1["version"]["id"].as_str().unwrap().to_string();
    assert_eq!(v1["version"]["stats"]["images"], 320);
    // Same content again: same id, nothing new.
    let again = env.json(&["dataset", "ingest", w.to_str().unwrap(), P[0], P[1]]);
    assert_eq!(again["created"], false);
    assert_eq!(again["version"]["id"], id1.as_str());
    let v2 = env.json(&[
        "dataset",
        "ingest",
        w.join("classify").to_str().unwrap(),
        P[0],
        P[1],
        "-m",
        "labels",
    ]);
    let id2 = v2["version"]["id"].as_str().unwrap().to_string();
    assert_eq!(v2["version"]["parent"], id1.as_str());

    let list = env.json(&["dataset", "list", P[0], P[1]]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id1.as_str(), id2.as_str()]);
    assert_eq!(list[1]["parent_id"], id1.as_str());
    assert_eq!(list[0]["instances"], 368);

    let stats = env.json(&["dataset", "stats", &id1[..8], P[0], P[1]]);
    assert_eq!(stats["instances"], 368);
    assert_eq!(stats["images_per_split"]["val"], 80);
    insta::assert_json_snapshot!("dataset_stats", redactions(&env.home).apply(&stats));
    let diff = env.json(&["dataset", "diff", &id1, &id2, P[0], P[1]]);
    assert_eq!(diff["added"].as_array().unwrap().len(), 0);
    assert!(diff["instances_per_label"]["scratch"][1].as_u64().unwrap() > 0);
    assert_eq!(diff["image_labels"]["ok"][0], 98);

    let show = env.ok(&["dataset", "show", "latest", P[0], P[1]]);
    assert!(show.contains(&id2), "{show}");

    // Export to YOLO and ingest it back: same instances count.
    let out = env.home.join("yolo-out");
    env.ok(&[
        "dataset",
        "export",
        &id1,
        "--format",
        "yolo",
        "--out",
        out.to_str().unwrap(),
        P[0],
        P[1],
    ]);
    assert!(out.join("data.yaml").is_file());
    let back = env.json(&["dataset", "ingest", out.to_str().unwrap(), P[0], P[1]]);
    assert_eq!(back["version"]["stats"]["instances"], 368);

    let co = env.home.join("co");
    env.ok(&[
        "dataset",
        "checkout",
        &id1,
        "--out",
        co.to_str().unwrap(),
        P[0],
        P[1],
    ]);
    assert_eq!(
        fs_err::read(co.join("images/val/val_00003.jpg")).unwrap(),
        fs_err::read(w.join("images/val/val_00003.jpg")).unwrap()
    );
    let dvc = env.json(&[
        "dataset",
        "export",
        &id1,
        "--dvc",
        "--out",
        env.home.join("dvcrepo").to_str().unwrap(),
        P[0],
        P[1],
    ]);
    assert_eq!(dvc["md5"], format!("{id1}.dir"));
    assert!(env.home.join("dvcrepo/dataset.dvc").is_file());
}

#[test]
fn dataset_lifecycle_on_sqlite() {
    let t = tempfile::tempdir().unwrap();
    lifecycle(&Env::new(t.path(), None));
}

#[test]
fn dataset_lifecycle_on_postgres() {
    let pg = sightline_db::testing::PgTestDatabase::create()
        .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
    let t = tempfile::tempdir().unwrap();
    lifecycle(&Env::new(t.path(), Some(pg.url().to_string())));
}

/// A copy of the seed manifest for project `name` with `labels`, written under `dir`.
fn manifest(dir: &Path, name: &str, labels: &[&str]) -> PathBuf {
    let seed = fs_err::read_to_string(seed()).unwrap();
    let mut out = String::new();
    let mut in_labels = false;
    for line in seed.lines() {
        if line.starts_with("project:") {
            out.push_str(&format!("project: {name}\n"));
        } else if line.starts_with("labels:") {
            in_labels = true;
            out.push_str("labels:\n");
            for l in labels {
                out.push_str(&format!("  - {l}\n"));
            }
        } else if in_labels && line.trim_start().starts_with("- ") {
            continue;
        } else {
            in_labels = false;
            out.push_str(line);
            out.push('\n');
        }
    }
    let p = dir.join(format!("{name}-{}.yaml", labels.len()));
    fs_err::write(&p, out).unwrap();
    p
}

/// The same content ingested into two projects gets the same id in each (versions are keyed by
/// project + id); an export refuses a version whose labels the project no longer has.
fn two_projects_and_export_labels(env: &Env, work: &Path) {
    let src = folders_with_unknown(work);
    fs_err::remove_dir_all(src.join("train/stain")).unwrap();
    let b = manifest(work, "widget_line_b", &["ok", "ng", "scratch", "dent"]);
    env.ok(&["project", "apply", b.to_str().unwrap()]);
    let pb = ["--project", "widget_line_b"];
    let in_a = env.json(&["dataset", "ingest", src.to_str().unwrap(), P[0], P[1]]);
    let in_b = env.json(&["dataset", "ingest", src.to_str().unwrap(), pb[0], pb[1]]);
    assert_eq!(in_a["created"], true);
    assert_eq!(
        in_b["created"], true,
        "new in project b even though a has it"
    );
    let id = in_a["version"]["id"].as_str().unwrap().to_string();
    assert_eq!(in_b["version"]["id"], id.as_str());
    for p in [P, pb] {
        let list = env.json(&["dataset", "list", p[0], p[1]]);
        assert_eq!(list.as_array().unwrap().len(), 1, "{p:?}: {list}");
        assert_eq!(list[0]["id"], id.as_str());
        assert_eq!(list[0]["project"], p[1]);
    }
    let again = env.json(&["dataset", "ingest", src.to_str().unwrap(), pb[0], pb[1]]);
    assert_eq!(again["created"], false);

    // Project b drops "dent" (allowed explicitly); its version still uses it.
    let b2 = manifest(work, "widget_line_b", &["ok", "ng", "scratch"]);
    env.ok(&[
        "project",
        "apply",
        b2.to_str().unwrap(),
        "--allow-label-change",
    ]);
    for format in ["yolo", "coco", "voc", "folder"] {
        let out = work.join(format!("export-{format}"));
        let err = env.fail(&[
            "dataset",
            "export",
            &id,
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
            pb[0],
            pb[1],
        ]);
        assert!(
            err.contains("uses 1 label(s) that are not in the project's labels (ok, ng, scratch)"),
            "{format}: {err}"
        );
        assert!(
            err.contains("\"dent\": 0 instance(s), 2 image label(s), in train/"),
            "{err}"
        );
        assert!(!out.exists(), "{format}: nothing written");
    }
    // Project a still has every label: exports, with YOLO class ids in project order.
    let out = work.join("export-a");
    env.ok(&[
        "dataset",
        "export",
        &id,
        "--format",
        "yolo",
        "--out",
        out.to_str().unwrap(),
        P[0],
        P[1],
    ]);
    let yaml = fs_err::read_to_string(out.join("data.yaml")).unwrap();
    assert!(
        yaml.contains("names:\n  0: \"ok\"\n  1: \"ng\"\n  2: \"scratch\"\n  3: \"dent\"\n"),
        "{yaml}"
    );
}

#[test]
fn two_projects_and_export_labels_on_sqlite() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::new(&t.path().join("home"), None);
    two_projects_and_export_labels(&env, t.path());
}

#[test]
fn two_projects_and_export_labels_on_postgres() {
    let pg = sightline_db::testing::PgTestDatabase::create()
        .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
    let t = tempfile::tempdir().unwrap();
    let env = Env::new(&t.path().join("home"), Some(pg.url().to_string()));
    two_projects_and_export_labels(&env, t.path());
}

/// Image folders with a class the project does not have.
fn folders_with_unknown(root: &Path) -> PathBuf {
    let w = fixtures().join("widgets-a/classify/train");
    let src = root.join("src");
    for (label, n) in [("ok", 3), ("dent", 2), ("stain", 2)] {
        fs_err::create_dir_all(src.join("train").join(label)).unwrap();
        let from = if label == "stain" { "ng" } else { label };
        let mut files: Vec<PathBuf> = fs_err::read_dir(w.join(from))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(n) {
            fs_err::copy(
                f,
                src.join("train").join(label).join(f.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    src
}

#[test]
fn unknown_labels_error_map_and_drop() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::new(&t.path().join("home"), None);
    let src = folders_with_unknown(t.path());
    let err = env.fail(&["dataset", "ingest", src.to_str().unwrap(), P[0], P[1]]);
    assert!(err.contains("1 label(s) not in the project"), "{err}");
    assert!(err.contains("\"stain\" in train/"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(env.versions_on_disk(), 0);
    assert_eq!(
        env.json(&["dataset", "list", P[0], P[1]])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let mapped = env.json(&[
        "dataset",
        "ingest",
        src.to_str().unwrap(),
        P[0],
        P[1],
        "--map",
        "stain=ng",
    ]);
    assert_eq!(mapped["version"]["stats"]["image_labels"]["ng"], 2);
    let dropped = env.json(&[
        "dataset",
        "ingest",
        src.to_str().unwrap(),
        P[0],
        P[1],
        "--drop-unknown",
    ]);
    let notes = dropped["notes"].to_string();
    assert!(
        notes.contains("dropped 2 image label(s) \\\"stain\\\""),
        "{notes}"
    );
}

#[test]
fn corrupt_image_and_strict_warnings_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::new(&t.path().join("home"), None);
    let src = folders_with_unknown(t.path());
    fs_err::remove_dir_all(src.join("train/stain")).unwrap();
    fs_err::write(
        src.join("train/ok/broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    let err = env.fail(&["dataset", "ingest", src.to_str().unwrap(), P[0], P[1]]);
    assert!(err.contains("train/ok/broken.jpg"), "{err}");
    assert!(err.contains("corrupt or unsupported image"), "{err}");
    assert_eq!(env.versions_on_disk(), 0);
    assert!(
        !env.data_area().join("store/files").exists(),
        "no object stored"
    );

    // A COCO file with a 2-point polygon: a warning, fatal with --strict.
    fs_err::remove_file(src.join("train/ok/broken.jpg")).unwrap();
    let coco = t.path().join("coco");
    fs_err::create_dir_all(coco.join("annotations")).unwrap();
    fs_err::create_dir_all(coco.join("images/train")).unwrap();
    let img = fs_err::read_dir(src.join("train/ok"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs_err::copy(&img, coco.join("images/train/a.jpg")).unwrap();
    let json = r#"{"images":[{"id":1,"file_name":"a.jpg","width":256,"height":256}],
        "annotations":[{"id":9,"image_id":1,"category_id":1,"segmentation":[[1,1,5,5]],"bbox":[1,1,4,4],"iscrowd":0}],
        "categories":[{"id":1,"name":"dent"}]}"#;
    fs_err::write(coco.join("annotations/instances_train.json"), json).unwrap();
    let err = env.fail(&[
        "dataset",
        "ingest",
        coco.to_str().unwrap(),
        P[0],
        P[1],
        "--strict",
    ]);
    assert!(
        err.contains("train/a.jpg: object 9: 1 polygon(s) with fewer than 3 points dropped"),
        "{err}"
    );
    assert_eq!(env.versions_on_disk(), 0);
    let ok = env.json(&["dataset", "ingest", coco.to_str().unwrap(), P[0], P[1]]);
    assert_eq!(ok["version"]["stats"]["instances"], 1, "kept as a box");
}

/// Serve `body` on 127.0.0.1: the first response is cut after half the body (a dropped
/// connection); later ones honour `Range` when `ranges` is set, else always send the whole body
/// with `200` (a server without range support). Records the request headers.
fn serve(body: Vec<u8>, ranges: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            // Never wait forever on a client.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = String::new();
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => headers.push_str(&line),
                }
            }
            log2.lock().unwrap().push(headers.clone());
            let range = headers
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("range: bytes=")
                        .map(|r| r.trim_end_matches('-').trim().to_string())
                })
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|_| ranges);
            let (head, data) = match (n, range) {
                (0, _) => (
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    ),
                    &body[..body.len() / 2],
                ),
                (_, Some(start)) => (
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - start,
                        body.len() - 1,
                        body.len()
                    ),
                    &body[start..],
                ),
                (_, None) => (
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    ),
                    &body[..],
                ),
            };
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(data);
            let _ = stream.flush();
            // End the response explicitly (the client reads to the end of the body).
            let _ = stream.shutdown(Shutdown::Both);
        }
    });
    (format!("http://{addr}/widgets.tar.gz"), log)
}

/// A `.tar.gz` of 5 classification images and its SHA-256.
fn small_archive(root: &Path) -> (Vec<u8>, String) {
    let src = folders_with_unknown(root);
    fs_err::remove_dir_all(src.join("train/stain")).unwrap();
    let tgz = root.join("widgets.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(root)
        .arg("src")
        .status()
        .unwrap();
    assert!(st.success());
    let body = fs_err::read(&tgz).unwrap();
    let out = Command::new("sha256sum").arg(&tgz).output().unwrap();
    let sha = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (body, sha)
}

#[test]
fn url_archive_resumes_and_checks_sha256() {
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let env = Env::new(&t.path().join("home"), None);
    let (body, sha) = small_archive(t.path());
    let (url, log) = serve(body.clone(), true);
    let downloads = env.data_area().join("work/downloads");
    // 1: the connection drops after half the body: an error that says how to go on, the part
    // kept, no version.
    let err = env.fail(&["dataset", "ingest", &url, P[0], P[1], "--sha256", &sha]);
    assert!(err.contains("run again to resume"), "{err}");
    assert_eq!(env.versions_on_disk(), 0);
    let part: Vec<PathBuf> = fs_err::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(part.len(), 1, "{part:?}");
    assert!(part[0].to_string_lossy().ends_with(".part"));
    assert_eq!(fs_err::read(&part[0]).unwrap(), body[..body.len() / 2]);
    // 2: resumed with a Range request; the wrong checksum removes the download, no version.
    let wrong = "0".repeat(64);
    let err = env.fail(&["dataset", "ingest", &url, P[0], P[1], "--sha256", &wrong]);
    assert!(err.contains("SHA-256 mismatch"), "{err}");
    assert!(err.contains(&sha), "names the actual checksum: {err}");
    assert_eq!(env.versions_on_disk(), 0);
    assert_eq!(
        fs_err::read_dir(&downloads).unwrap().count(),
        0,
        "nothing kept"
    );
    // 3: a fresh download with the right checksum ingests.
    let ok = env.json(&["dataset", "ingest", &url, P[0], P[1], "--sha256", &sha]);
    assert_eq!(ok["version"]["stats"]["images"], 5);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[1]
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={}-", body.len() / 2)),
        "second request resumes: {}",
        log[1]
    );
    assert!(
        !log[2].to_ascii_lowercase().contains("range:"),
        "{}",
        log[2]
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn url_without_range_support_restarts_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let env = Env::new(&t.path().join("home"), None);
    let (body, sha) = small_archive(t.path());
    let (url, log) = serve(body, false);
    let err = env.fail(&["dataset", "ingest", &url, P[0], P[1]]);
    assert!(err.contains("run again to resume"), "{err}");
    // The server ignores the Range request and sends everything: the part is rewritten from
    // byte 0, not appended to (the checksum proves it).
    let ok = env.json(&["dataset", "ingest", &url, P[0], P[1], "--sha256", &sha]);
    assert_eq!(ok["version"]["stats"]["images"], 5);
    let log = log.lock().unwrap();
    assert!(
        log[1].to_ascii_lowercase().contains("range: bytes="),
        "{}",
        log[1]
    );
}
