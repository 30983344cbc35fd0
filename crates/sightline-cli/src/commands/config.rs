//! `sightline config`: validate project manifests, show the resolved settings.

use std::path::PathBuf;

use anyhow::bail;
use serde::Serialize;
use sightline_core::{Diagnostic, Manifest, ManifestError, Position};

use crate::ctx::Ctx;
use crate::inference::{InferenceRuntime, RuntimeArgs};

/// Arguments of `sightline config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check manifests (models/configs/*.yaml): prints every error as FILE:LINE:COLUMN: MESSAGE
    /// and exits non-zero when any file is invalid.
    Validate {
        /// Manifest files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the resolved settings (defaults < sightline.toml < SIGHTLINE_* < flags).
    Settings,
}

#[derive(Serialize)]
struct FileResult {
    file: String,
    valid: bool,
    project: Option<String>,
    errors: Vec<Diagnostic>,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    match args.command {
        Command::Validate { files } => validate(&files, ctx),
        Command::Settings => {
            let mut s = ctx.settings.clone();
            s.database_url = s.database_url_redacted();
            let runtime = InferenceRuntime::resolve(ctx, &RuntimeArgs::default())?;
            if ctx.json {
                let mut v = serde_json::to_value(&s)?;
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        "runtime".into(),
                        serde_json::json!({
                            "name": runtime.resolved.name(),
                            "library": runtime.onnxruntime(),
                            "reason": runtime.resolved.reason,
                        }),
                    );
                }
                ctx.print_json(&v)
            } else {
                println!("home          {}", s.home.display());
                println!("database_url  {}", s.database_url);
                println!("weights_dir   {}", s.weights_dir.display());
                println!("artifacts     {}", ctx.store()?.describe());
                println!("runtime       {}", runtime.resolved.reason);
                match &s.config_file {
                    Some(f) => println!("config_file   {}", f.display()),
                    None => println!("config_file   (none)"),
                }
                Ok(())
            }
        }
    }
}

fn validate(files: &[PathBuf], ctx: &Ctx) -> anyhow::Result<()> {
    let mut results = Vec::with_capacity(files.len());
    for file in files {
        let name = file.display().to_string();
        let result = match Manifest::load(file) {
            Ok(m) => FileResult {
                file: name,
                valid: true,
                project: Some(m.project),
                errors: Vec::new(),
            },
            Err(ManifestError::Invalid(d)) => FileResult {
                file: name,
                valid: false,
                project: None,
                errors: d.0,
            },
            Err(ManifestError::Io(e)) => FileResult {
                file: name.clone(),
                valid: false,
                project: None,
                errors: vec![Diagnostic {
                    file: name,
                    position: Position::START,
                    message: format!("cannot read the file: {}", io_reason(&e)),
                }],
            },
        };
        results.push(result);
    }
    let invalid = results.iter().filter(|r| !r.valid).count();
    if ctx.json {
        ctx.print_json(&results)?;
    } else {
        for r in &results {
            if r.valid {
                println!(
                    "{}: ok (project {})",
                    r.file,
                    r.project.as_deref().unwrap_or("?")
                );
            }
            for e in &r.errors {
                eprintln!("{e}");
            }
        }
    }
    if invalid > 0 {
        bail!(
            "{invalid} of {} manifest{} invalid",
            results.len(),
            if results.len() == 1 { " is" } else { "s are" }
        );
    }
    Ok(())
}

/// The OS reason without the path (the diagnostic already names the file).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
