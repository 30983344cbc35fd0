//! The inference runtime of a command: `--runtime` and the `[inference]` settings resolved into
//! Burn or ONNX Runtime (see `sightline_onnx::runtime`), with the one-line notice when the
//! faster runtime is not available.

use std::path::PathBuf;

use anyhow::Context as _;
use sightline_onnx::attach::OrtRuntime;
use sightline_onnx::runtime::{
    self, INSTALL_HINT, Provider, Resolved, RuntimePreference, SessionOptions,
};

use crate::ctx::Ctx;

/// Runtime flags shared by `predict`, `evaluate`, `bench predict`, `serve` and `demo`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RuntimeArgs {
    /// Inference runtime: auto (ONNX Runtime when its library is found, else Burn), burn or
    /// onnxruntime. Default: the `[inference] runtime` setting / $SIGHTLINE_RUNTIME, else auto.
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: Option<String>,
    /// ONNX Runtime shared library (libonnxruntime.so.*). Default: the `onnxruntime_library`
    /// setting / $SIGHTLINE_ONNXRUNTIME_LIBRARY, $ORT_DYLIB_PATH, else <home>/onnxruntime.
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_library: Option<PathBuf>,
    /// ONNX Runtime execution provider: cpu, cuda[:N], tensorrt[:N].
    #[arg(long, value_name = "PROVIDER")]
    pub ort_provider: Option<String>,
    /// ONNX Runtime intra-op threads (default: one per physical core).
    #[arg(long, value_name = "N")]
    pub ort_threads: Option<usize>,
}

/// The resolved runtime of one command.
#[derive(Debug, Clone)]
pub struct InferenceRuntime {
    /// Which runtime and why.
    pub resolved: Resolved,
    /// Session options for ONNX Runtime.
    pub options: SessionOptions,
    /// True when `auto` fell back to Burn (a notice is due).
    pub fell_back: bool,
}

impl InferenceRuntime {
    /// Resolves flags over the settings (flags > environment > file > defaults).
    pub fn resolve(ctx: &Ctx, args: &RuntimeArgs) -> anyhow::Result<Self> {
        let s = &ctx.settings.inference;
        let pref: RuntimePreference = args
            .runtime
            .as_deref()
            .or(s.runtime.as_deref())
            .unwrap_or("auto")
            .parse()?;
        let provider: Provider = args
            .ort_provider
            .as_deref()
            .or(s.provider.as_deref())
            .unwrap_or("cpu")
            .parse()?;
        let threads = match args.ort_threads.or(s.threads) {
            Some(0) => anyhow::bail!("--ort-threads must be at least 1"),
            t => t,
        };
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let library = args
            .onnxruntime_library
            .as_ref()
            .map(|p| cwd.join(p))
            .or_else(|| s.onnxruntime_library.clone());
        let lookup =
            runtime::locate_library(library.as_deref(), &ctx.home, &|k| std::env::var(k).ok());
        let resolved = runtime::resolve(pref, &lookup)?;
        let fell_back = pref == RuntimePreference::Auto && resolved.onnxruntime.is_none();
        Ok(Self {
            resolved,
            options: SessionOptions { threads, provider },
            fell_back,
        })
    }

    /// The library to load, when ONNX Runtime runs.
    pub fn onnxruntime(&self) -> Option<&std::path::Path> {
        self.resolved.onnxruntime.as_deref()
    }

    /// ONNX Runtime for the libraries (`None` when Burn runs).
    pub fn ort(&self) -> Option<OrtRuntime> {
        self.onnxruntime().map(|library| OrtRuntime {
            library: library.to_path_buf(),
            options: self.options,
        })
    }

    /// Prints the notice on stderr when `auto` ended on Burn.
    pub fn notice(&self) {
        if self.fell_back {
            eprintln!(
                "notice: inference runs on Burn because ONNX Runtime is {}; {INSTALL_HINT}",
                self.resolved
                    .reason
                    .trim_start_matches("burn: ONNX Runtime ")
            );
        }
    }
}
