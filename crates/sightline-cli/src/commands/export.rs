//! `sightline export`: a checkpoint (any kind we load: Ultralytics `.pt`, torchvision `.pth`,
//! safetensors, Burnpack `.bpk`) or a registered model version (`model:<id>`) as an ONNX file,
//! written by `sightline_onnx::export`. Detectors are drop-ins for Ultralytics'
//! `export(format="onnx")` (`images` → `output0`, `output1`, Ultralytics metadata);
//! classifiers follow torchvision's export (`input` → `logits`). Prints the file's inputs,
//! outputs and size, or a JSON object with `--json`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sightline_onnx::export::proto::Dim;
use sightline_onnx::export::{
    DEFAULT_OPSET, ExportOptions, ValueSummary, describe, export_loaded_checkpoint,
};
use sightline_registry::Preprocessing;
use sightline_vision::checkpoint::read_checkpoint;

use crate::ctx::Ctx;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ONNX (opset 17 by default).
    Onnx,
}

/// Arguments of `sightline export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint file (Ultralytics `.pt`, torchvision `.pth`, safetensors, Burnpack `.bpk`) or
    /// a registered model version `model:<id>`.
    #[arg(long)]
    pub weights: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "onnx")]
    pub format: Format,
    /// Input size (square; a detector's must be a multiple of 32). Default: the size the
    /// checkpoint was trained at (a model version: its bundle's), else 640 (detector) / 224
    /// (classifier). With --dynamic only recorded in the metadata.
    #[arg(long)]
    pub imgsz: Option<usize>,
    /// Static batch size.
    #[arg(long, default_value_t = 1, conflicts_with = "dynamic")]
    pub batch: usize,
    /// Symbolic batch, height and width (any input whose sides are multiples of 32).
    #[arg(long)]
    pub dynamic: bool,
    /// Class names, comma-separated (default: the checkpoint's own; a model version's labels).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// ONNX opset (17 to 21).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// Output file (default: the checkpoint's path with the `.onnx` extension).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Where the weights come from, once `model:<id>` is resolved.
struct Source {
    path: PathBuf,
    labels: Option<Vec<String>>,
    imgsz: Option<usize>,
}

async fn resolve(args: &Args, ctx: &Ctx) -> anyhow::Result<Source> {
    let Some(id) = args.weights.strip_prefix("model:") else {
        return Ok(Source {
            path: PathBuf::from(&args.weights),
            labels: args.labels.clone(),
            imgsz: args.imgsz,
        });
    };
    let id: i64 = id.parse().with_context(|| {
        format!(
            "`model:<id>` takes a model version id (a number), got `{}`",
            args.weights
        )
    })?;
    let registry = ctx.registry().await?;
    let model = registry
        .get(id)
        .await
        .with_context(|| format!("cannot find model version {id}"))?;
    let bundle = registry
        .fetch_bundle(&model)
        .await
        .with_context(|| format!("cannot fetch the bundle of model version {id}"))?;
    let recorded = match bundle.manifest.preprocessing {
        Preprocessing::Letterbox { imgsz, .. } => imgsz as usize,
        Preprocessing::ResizeCrop { crop, .. } => crop as usize,
    };
    Ok(Source {
        path: bundle.weights_path(),
        labels: args
            .labels
            .clone()
            .or_else(|| Some(bundle.manifest.labels.clone())),
        imgsz: args.imgsz.or(Some(recorded)),
    })
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let Format::Onnx = args.format;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let source = resolve(&args, ctx).await?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None if args.weights.starts_with("model:") => {
            bail!("--out is needed when exporting a model version")
        }
        None => source.path.with_extension("onnx"),
    };
    let json = ctx.json;
    let opts = ExportOptions {
        imgsz: source.imgsz.map(|s| [s, s]),
        batch: args.batch,
        dynamic: args.dynamic,
        opset: args.opset,
        ..ExportOptions::default()
    };
    let weights = args.weights.clone();
    tokio::task::spawn_blocking(move || export(&weights, source, &opts, &out, json))
        .await
        .context("export worker stopped")?
}

fn dims_json(dims: &[Dim]) -> Value {
    Value::Array(
        dims.iter()
            .map(|d| match d {
                Dim::Fixed(n) => json!(n),
                Dim::Symbol(s) => json!(s),
            })
            .collect(),
    )
}

fn values_json(values: &[ValueSummary]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| json!({"name": v.name, "shape": dims_json(&v.dims)}))
            .collect(),
    )
}

fn dims_text(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

fn export(
    weights: &str,
    source: Source,
    opts: &ExportOptions,
    out: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // the error names the file
    let ckpt = read_checkpoint(&source.path)?;
    let exported = export_loaded_checkpoint(ckpt, source.labels, opts)
        .with_context(|| format!("cannot export {}", source.path.display()))?;
    let summary = describe(&exported.bytes).context("reading back the exported file")?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir)?;
    }
    fs_err::write(out, &exported.bytes)?;
    let task = exported.task.as_str();
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let metadata: serde_json::Map<String, Value> = summary
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let obj = json!({
            "weights": weights,
            "checkpoint": source.path,
            "out": out,
            "format": "onnx",
            "task": task,
            "imgsz": exported.imgsz,
            "batch": opts.batch,
            "dynamic": opts.dynamic,
            "opset": summary.opset,
            "ir_version": summary.ir_version,
            "bytes": exported.bytes.len(),
            "nodes": summary.nodes,
            "parameters": summary.parameters,
            "names": exported.names,
            "inputs": values_json(&summary.inputs),
            "outputs": values_json(&summary.outputs),
            "metadata": metadata,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
        return Ok(());
    }
    let [h, w] = exported.imgsz;
    println!(
        "exported {} ({task}) to {}: {:.1} MB, opset {}, {} nodes, {:.2}M parameters ({seconds:.1}s)",
        source.path.display(),
        out.display(),
        exported.bytes.len() as f64 / 1e6,
        summary.opset,
        summary.nodes,
        summary.parameters as f64 / 1e6,
    );
    let shapes = if opts.dynamic {
        format!("dynamic batch and sides (imgsz {h}×{w} recorded)")
    } else {
        format!("static, batch {} at {h}×{w}", opts.batch)
    };
    const SHOWN: usize = 12;
    let mut names = exported.names[..exported.names.len().min(SHOWN)].join(", ");
    if exported.names.len() > SHOWN {
        names.push_str(&format!(", … {} more", exported.names.len() - SHOWN));
    }
    println!("  {shapes}; {} classes: {names}", exported.names.len());
    for v in &summary.inputs {
        println!("  input  {:<8} {}", v.name, dims_text(&v.dims));
    }
    for v in &summary.outputs {
        println!("  output {:<8} {}", v.name, dims_text(&v.dims));
    }
    Ok(())
}
