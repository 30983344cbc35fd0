//! `sightline runtime`: which inference runtime is active and why (`show`), and `install`, which
//! puts PyPI's `onnxruntime` wheel into a virtual environment under `<home>/onnxruntime` where
//! the library lookup finds it. Python is only used to install the wheel; the binary loads
//! `libonnxruntime.so` from it directly.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::json;
use sightline_onnx::runtime;

use crate::ctx::Ctx;
use crate::inference::{InferenceRuntime, RuntimeArgs};

/// The `onnxruntime` wheel version installed by default (the version tests and benchmarks use).
pub const DEFAULT_ORT_VERSION: &str = "1.32.0";

/// Arguments of `sightline runtime`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Print the inference runtime that predict/evaluate/serve would use, and why.
    Show {
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Install ONNX Runtime (PyPI's onnxruntime wheel) into <home>/onnxruntime.
    Install(InstallArgs),
}

/// Arguments of `sightline runtime install`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Python interpreter used to create the virtual environment.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Wheel version (`pip install onnxruntime==VERSION`).
    #[arg(long, default_value = DEFAULT_ORT_VERSION)]
    pub ort_version: String,
    /// Reinstall even when a library is already there.
    #[arg(long)]
    pub force: bool,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    match args.command {
        Sub::Show { runtime } => show(ctx, &runtime),
        Sub::Install(a) => {
            let home = ctx.home.clone();
            let json = ctx.json;
            let lib = tokio::task::spawn_blocking(move || install(&home, &a, !json))
                .await
                .context("install worker stopped")??;
            if json {
                ctx.print_json(&json!({"library": lib, "version": runtime::version()}))
            } else {
                println!(
                    "ONNX Runtime {} ready: {}",
                    runtime::version(),
                    lib.display()
                );
                Ok(())
            }
        }
    }
}

fn show(ctx: &Ctx, args: &RuntimeArgs) -> anyhow::Result<()> {
    let rt = InferenceRuntime::resolve(ctx, args)?;
    if ctx.json {
        return ctx.print_json(&json!({
            "runtime": rt.resolved.name(),
            "library": rt.onnxruntime(),
            "provider": rt.options.provider.to_string(),
            "threads": rt.options.threads,
            "reason": rt.resolved.reason,
        }));
    }
    println!("runtime   {}", rt.resolved.name());
    println!("why       {}", rt.resolved.reason);
    if rt.onnxruntime().is_some() {
        println!("provider  {}", rt.options.provider);
    }
    if rt.fell_back {
        println!("hint      {}", runtime::INSTALL_HINT);
    }
    Ok(())
}

/// Creates `<home>/onnxruntime` (a venv), pip-installs the wheel, finds the library in it and
/// loads it once to check it. Returns the library path. `progress` prints the steps on stderr.
pub fn install(
    home: &std::path::Path,
    args: &InstallArgs,
    progress: bool,
) -> anyhow::Result<PathBuf> {
    let dir = runtime::install_dir(home);
    if !args.force
        && let Some(lib) = runtime::find_in_tree(&dir)
    {
        runtime::init(&lib)?;
        return Ok(lib);
    }
    let say = |m: &str| {
        if progress {
            eprintln!("{m}");
        }
    };
    say(&format!(
        "creating a virtual environment in {} ({})",
        dir.display(),
        args.python.display()
    ));
    fs_err::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let status = Command::new(&args.python)
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} not found: ONNX Runtime is installed from PyPI's onnxruntime wheel with Python \
             (only for the install); install Python 3 or set onnxruntime_library to an existing \
             libonnxruntime.so",
            args.python.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("running {}", args.python.display())),
        Ok(s) if !s.success() => bail!(
            "`{} -m venv {}` failed ({s}); on Debian install python3-venv",
            args.python.display(),
            dir.display()
        ),
        Ok(_) => {}
    }
    let pip = dir.join("bin").join("pip");
    say(&format!("pip install onnxruntime=={}", args.ort_version));
    let status = Command::new(&pip)
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .arg(format!("onnxruntime=={}", args.ort_version))
        .status()
        .with_context(|| format!("running {}", pip.display()))?;
    if !status.success() {
        bail!(
            "`pip install onnxruntime=={}` failed ({status}); check the network access to PyPI",
            args.ort_version
        );
    }
    let lib = runtime::find_in_tree(&dir).with_context(|| {
        format!(
            "the onnxruntime wheel installed but no libonnxruntime library was found under {}",
            dir.display()
        )
    })?;
    runtime::init(&lib)?;
    Ok(lib)
}
