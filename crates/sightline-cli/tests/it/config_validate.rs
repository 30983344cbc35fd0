//! `sightline config validate` and `config settings`, driving the real binary.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use sightline_testkit::Sightline;

use crate::support::SIGHTLINE;

fn repo() -> PathBuf {
    sightline_testkit::workspace_root()
}

/// The binary in a clean environment, run from `cwd`.
fn sightline(cwd: &Path, args: &[&str]) -> Output {
    Sightline::new(SIGHTLINE)
        .current_dir(cwd)
        .env_removed(&[
            "SIGHTLINE_HOME",
            "SIGHTLINE_DATABASE_URL",
            "DATABASE_URL",
            "SIGHTLINE_CONFIG",
            "SIGHTLINE_ARTIFACTS_BACKEND",
            "SIGHTLINE_ARTIFACTS_ROOT",
            "SIGHTLINE_S3_BUCKET",
            "SIGHTLINE_WEIGHTS_DIR",
            "RUST_LOG",
        ])
        .output(args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn seed_manifest_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let seed = repo().join("models/configs/widget_line_a.yaml");
    let out = sightline(dir.path(), &["config", "validate", seed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok (project widget_line_a)"));
}

#[test]
fn every_error_is_printed_with_file_line_column_and_exit_is_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("bad.yaml"),
        "project: line_a\nlabels: [ok, ok, \"\"]\nmodels:\n  detector:\n    name: yolov9-seg\n  business_rules:\n    max_ng_ratio: 2\n",
    )
    .unwrap();
    let seed = repo().join("models/configs/widget_line_a.yaml");
    let out = sightline(
        dir.path(),
        &["config", "validate", "bad.yaml", seed.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let diag: Vec<&str> = err.lines().filter(|l| l.starts_with("bad.yaml:")).collect();
    assert_eq!(
        diag,
        [
            "bad.yaml:2:14: duplicate label `ok` (already listed at line 2, column 10)",
            "bad.yaml:2:18: empty label; every label needs a name",
            "bad.yaml:5:11: unknown model name `yolov9-seg`; supported: yolov8n-seg, yolov8s-seg, \
             yolov8m-seg, yolov8l-seg, yolov8x-seg, yolov8-seg, mobilenet_v3_small, mobilenet_v3_large \
             (did you mean `yolov8-seg`?)",
            "bad.yaml:7:19: `max_ng_ratio` must be between 0 and 1 (a fraction of images), found 2",
        ]
    );
    assert!(err.contains("1 of 2 manifests are invalid"), "{err}");
    // the valid file is still reported as valid
    assert!(text(&out.stdout).contains("ok (project widget_line_a)"));
}

#[test]
fn missing_file_and_json_output() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("x.yaml"), "project: p\nlabels: [a]\nmodels:\n  classifier:\n    name: mobilenet_v3_small\n    hyperparameters:\n      batch_size: big\n").unwrap();
    let out = sightline(
        dir.path(),
        &["--json", "config", "validate", "x.yaml", "nope.yaml"],
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["valid"], false);
    assert_eq!(v[0]["errors"][0]["position"]["line"], 7);
    assert_eq!(v[0]["errors"][0]["position"]["column"], 19);
    assert_eq!(
        v[0]["errors"][0]["message"],
        "expected a non-negative integer, found `big`"
    );
    assert_eq!(v[1]["file"], "nope.yaml");
    assert_eq!(
        v[1]["errors"][0]["message"],
        "cannot read the file: no such file"
    );
}

#[test]
fn settings_layering_file_env_flag() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("sightline.toml"),
        "home = \"from-file\"\n[artifacts]\nroot = \"store\"\n",
    )
    .unwrap();
    let show = |extra_env: &[(&str, &str)], args: &[&str]| -> serde_json::Value {
        let mut bin = Sightline::new(SIGHTLINE)
            .current_dir(dir.path())
            .env_removed(&[
                "SIGHTLINE_HOME",
                "SIGHTLINE_DATABASE_URL",
                "DATABASE_URL",
                "SIGHTLINE_CONFIG",
                "SIGHTLINE_RUNTIME",
                "SIGHTLINE_ONNXRUNTIME_LIBRARY",
                "ORT_DYLIB_PATH",
            ]);
        for (k, v) in extra_env {
            bin = bin.env(k, v);
        }
        let out = bin
            .command(args)
            .args(["--json", "config", "settings"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let root = dir.path().canonicalize().unwrap();
    let v = show(&[], &[]);
    assert_eq!(v["home"], root.join("from-file").to_str().unwrap());
    assert_eq!(v["artifacts"]["root"], root.join("store").to_str().unwrap());
    assert_eq!(
        v["database_url"],
        format!("sqlite://{}", root.join("from-file/sightline.db").display())
    );
    let v = show(&[("SIGHTLINE_HOME", "from-env")], &[]);
    assert_eq!(v["home"], root.join("from-env").to_str().unwrap());
    let v = show(&[("SIGHTLINE_HOME", "from-env")], &["--home", "from-flag"]);
    assert_eq!(v["home"], root.join("from-flag").to_str().unwrap());
    let v = show(&[("DATABASE_URL", "postgres://u:pw@h/db")], &[]);
    assert_eq!(v["database_url"], "postgres://u:***@h/db");
    // Which inference runtime is active, and why.
    let v = show(&[], &[]);
    assert_eq!(v["runtime"]["name"], "burn", "{v}");
    assert!(
        v["runtime"]["reason"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    let lib = dir.path().join("libonnxruntime.so.1.32.0");
    fs_err::write(&lib, b"not loaded by `config settings`").unwrap();
    let lib_s = lib.to_str().unwrap();
    let v = show(&[("SIGHTLINE_ONNXRUNTIME_LIBRARY", lib_s)], &[]);
    assert_eq!(v["runtime"]["name"], "onnxruntime", "{v}");
    assert_eq!(v["runtime"]["library"], lib_s);
    assert_eq!(v["inference"]["onnxruntime_library"], lib_s);
    let v = show(
        &[
            ("SIGHTLINE_ONNXRUNTIME_LIBRARY", lib_s),
            ("SIGHTLINE_RUNTIME", "burn"),
        ],
        &[],
    );
    assert_eq!(v["runtime"]["name"], "burn");
    let v = show(
        &[(
            "SIGHTLINE_ONNXRUNTIME_LIBRARY",
            "/nonexistent/libonnxruntime.so",
        )],
        &[],
    );
    assert_eq!(v["runtime"]["name"], "burn");
    assert!(
        v["runtime"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{v}"
    );
}

/// The newcomer's path: `runtime install` puts PyPI's onnxruntime wheel under <home>/onnxruntime
/// (a virtual environment; needs python3 with venv and PyPI, as `.ci/run` has), after which the
/// binary finds and loads the library by itself.
#[test]
fn runtime_install_then_show() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Sightline::new(SIGHTLINE)
            .current_dir(dir.path())
            .env_removed(&[
                "SIGHTLINE_RUNTIME",
                "SIGHTLINE_ONNXRUNTIME_LIBRARY",
                "ORT_DYLIB_PATH",
                "SIGHTLINE_CONFIG",
            ])
            .env("SIGHTLINE_HOME", dir.path().join("home"))
            .output(args)
    };
    let before = run(&["--json", "runtime", "show"]);
    assert!(before.status.success(), "{}", text(&before.stderr));
    let v: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(v["runtime"], "burn");
    let install = run(&["--json", "runtime", "install"]);
    assert!(install.status.success(), "{}", text(&install.stderr));
    let v: serde_json::Value = serde_json::from_slice(&install.stdout).unwrap();
    assert_eq!(v["version"], "1.32.0", "{v}");
    let after = run(&["--json", "runtime", "show"]);
    let v: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(v["runtime"], "onnxruntime", "{v}");
    assert!(
        v["library"]
            .as_str()
            .unwrap()
            .starts_with(dir.path().join("home/onnxruntime").to_str().unwrap())
    );
    // A second install reuses the copy (no pip run).
    let again = run(&["runtime", "install"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        !text(&again.stderr).contains("pip install"),
        "{}",
        text(&again.stderr)
    );
}
