//! Versions checked out by the real `dvc` (DVC 3): `dvc checkout` from a cache filled by
//! `export_dvc`, `dvc pull` from a local remote, and `dvc add` computing the same directory id.
//! Needs `dvc` on PATH (or `$DVC_BIN`); fails when it is missing.

#![allow(clippy::unwrap_used)]

mod common;

use sightline_datasets::version::{CreateOptions, Repo};
use sightline_datasets::{Format, read, validate};
use std::path::Path;
use std::process::Command;

fn dvc(dir: &Path, args: &[&str]) -> String {
    let bin = std::env::var("DVC_BIN").unwrap_or_else(|_| "dvc".into());
    let out = Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{bin}` (install DVC 3: pip install dvc): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dvc {args:?} failed:\n{text}");
    text
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, fs_err::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// A version of a slice of widgets-a (the 80 val images) in a fresh data area.
fn make_version(data: &Path) -> (Repo, String) {
    let w = common::widgets();
    let mut imp = read(&w, Format::Coco).unwrap();
    imp.dataset.images.retain(|i| i.file.starts_with("val/"));
    imp.sources.retain(|f, _| f.starts_with("val/"));
    validate::check(&mut imp, true, true).unwrap();
    let repo = Repo::open(data);
    let (v, created) = repo
        .create(
            imp,
            CreateOptions {
                message: "val".into(),
                author: "test".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(created);
    (repo, v.id)
}

#[test]
fn dvc_checkout_and_pull_reproduce_the_version_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let (repo, id) = make_version(&t.path().join("data"));
    let expected_dir = t.path().join("expected");
    repo.checkout(&id, &expected_dir).unwrap();
    let expected = files(&expected_dir);
    assert_eq!(expected.len(), 81, "80 images + annotations.json");

    // 1. cache: objects copied into .dvc/cache, then `dvc checkout`.
    let a = t.path().join("repo-a");
    fs_err::create_dir_all(&a).unwrap();
    dvc(&a, &["init", "--no-scm", "-q"]);
    repo.export_dvc(&id, &a, "widgets", &a.join(".dvc/cache"))
        .unwrap();
    dvc(&a, &["checkout"]);
    assert_eq!(files(&a.join("widgets")), expected);
    dvc(&a, &["status"]);

    // 2. remote: objects in a local remote folder, `dvc pull` into a fresh repo.
    let b = t.path().join("repo-b");
    let remote = t.path().join("remote");
    fs_err::create_dir_all(&b).unwrap();
    dvc(&b, &["init", "--no-scm", "-q"]);
    dvc(
        &b,
        &["remote", "add", "-d", "origin", remote.to_str().unwrap()],
    );
    repo.export_dvc(&id, &b, "widgets", &remote).unwrap();
    dvc(&b, &["pull"]);
    assert_eq!(files(&b.join("widgets")), expected);

    // 3. the project store itself is a valid DVC remote.
    let c = t.path().join("repo-c");
    fs_err::create_dir_all(&c).unwrap();
    dvc(&c, &["init", "--no-scm", "-q"]);
    dvc(
        &c,
        &[
            "remote",
            "add",
            "-d",
            "store",
            repo.store().root().to_str().unwrap(),
        ],
    );
    fs_err::copy(b.join("widgets.dvc"), c.join("widgets.dvc")).unwrap();
    dvc(&c, &["pull"]);
    assert_eq!(files(&c.join("widgets")), expected);
}

#[test]
fn dvc_add_computes_the_same_directory_id() {
    let t = tempfile::tempdir().unwrap();
    let (repo, id) = make_version(&t.path().join("data"));
    let d = t.path().join("repo");
    fs_err::create_dir_all(&d).unwrap();
    dvc(&d, &["init", "--no-scm", "-q"]);
    repo.checkout(&id, &d.join("ds")).unwrap();
    dvc(&d, &["add", "-q", "ds"]);
    let text = fs_err::read_to_string(d.join("ds.dvc")).unwrap();
    assert!(
        text.contains(&format!("md5: {id}.dir")),
        "dvc add wrote:\n{text}\nsightline id {id}"
    );
}
