//! The `sightline` binary in a chosen home and environment, with its output captured.
//!
//! ```no_run
//! # fn demo(home: &std::path::Path) {
//! use sightline_testkit::Sightline;
//! let s = Sightline::with_flags(env!("CARGO_MANIFEST_DIR"), home, None);
//! let settings = s.json(&["config", "settings"]);
//! # let _ = settings;
//! # }
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use serde_json::Value;

/// The variables [`Sightline::with_flags`] removes so that the caller's environment cannot leak
/// into a test (a developer's `DATABASE_URL`, `RUST_LOG` noise on stderr, …).
pub const CLEARED_ENV: &[&str] = &[
    "SIGHTLINE_HOME",
    "SIGHTLINE_DATABASE_URL",
    "DATABASE_URL",
    "SIGHTLINE_CONFIG",
    "RUST_LOG",
];

/// How to run the binary: its path, the working directory, arguments put before every command's
/// own, and variables set or removed.
#[derive(Debug, Clone)]
pub struct Sightline {
    exe: PathBuf,
    cwd: Option<PathBuf>,
    prefix: Vec<OsString>,
    set: Vec<(OsString, OsString)>,
    removed: Vec<OsString>,
}

impl Sightline {
    /// The binary at `exe` (pass `env!("CARGO_BIN_EXE_sightline")`), in the test's working
    /// directory and environment.
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self {
            exe: exe.into(),
            cwd: None,
            prefix: Vec::new(),
            set: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The binary with `--home HOME [--database-url URL]` before every command, run in `home`
    /// (created) with [`CLEARED_ENV`] removed.
    pub fn with_flags(exe: impl Into<PathBuf>, home: &Path, database_url: Option<&str>) -> Self {
        fs_err::create_dir_all(home).unwrap();
        let mut s = Self::new(exe)
            .current_dir(home)
            .env_removed(CLEARED_ENV)
            .arg("--home")
            .arg(home);
        if let Some(url) = database_url {
            s = s.arg("--database-url").arg(url);
        }
        s
    }

    /// The binary run in `dir` with `SIGHTLINE_HOME=DIR/.sightline` and `DATABASE_URL` set and
    /// `SIGHTLINE_API_TOKENS` removed (so that the server starts without a token unless the test
    /// passes one).
    pub fn with_env_home(exe: impl Into<PathBuf>, dir: &Path, database_url: &str) -> Self {
        Self::new(exe)
            .current_dir(dir)
            .env("SIGHTLINE_HOME", dir.join(".sightline"))
            .env("DATABASE_URL", database_url)
            .env_remove("SIGHTLINE_API_TOKENS")
    }

    /// Run in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Put `arg` before every command's own arguments.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.prefix.push(arg.as_ref().to_os_string());
        self
    }

    /// Set `key=value` for every command.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.set
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Remove `key` from every command's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.removed.push(key.as_ref().to_os_string());
        self
    }

    /// Remove each of `keys`.
    pub fn env_removed(self, keys: &[&str]) -> Self {
        keys.iter().fold(self, |s, k| s.env_remove(k))
    }

    /// The working directory, when one was set.
    pub fn cwd(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The command for `sightline <prefix> <args>`, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        for key in &self.removed {
            cmd.env_remove(key);
        }
        for (key, value) in &self.set {
            cmd.env(key, value);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.args(&self.prefix).args(args);
        cmd
    }

    /// Run `args` to completion.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", self.exe.display()))
    }

    /// Run `args` to completion; the status and the text of both streams.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.output(args))
    }

    /// Run `args`, assert success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    /// Run `args`, assert failure, return stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        self.run(args).fail(args)
    }

    /// Run `--json <args>`, assert success, parse stdout as one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sightline {all:?}: {e}: {out}"))
    }

    /// Run `--json <args>`, assert success, parse each stdout line as JSON (events).
    pub fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        json_lines(&self.ok(&all))
    }
}

/// Each non-empty line of `text` parsed as JSON.
///
/// # Panics
/// When a line is not JSON.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A finished command: its exit status and both streams as text.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Assert success (showing both streams otherwise); return stdout.
    pub fn ok(self, args: &[&str]) -> String {
        assert!(
            self.success(),
            "sightline {args:?} failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Assert failure (showing stdout otherwise); return stderr.
    pub fn fail(self, args: &[&str]) -> String {
        assert!(
            !self.success(),
            "sightline {args:?} should fail:\n{}",
            self.stdout
        );
        self.stderr
    }
}
