//! `sightline demo`: the demo project through the whole lifecycle (data, training, evaluation,
//! registry, serving, inspections, a correction, dataset version 2), and its synthetic data.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::ctx::Ctx;

/// Arguments of `sightline demo`. Without a subcommand it takes the demo project through the
/// whole lifecycle, reusing whatever a previous run already made, then serves it.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<DemoCommand>,
    /// Project manifest of the demo project.
    #[arg(long, default_value = "models/configs/widget_line_a.yaml")]
    manifest: PathBuf,
    /// Training images of the synthetic demo data.
    #[arg(long, default_value_t = 48)]
    train: usize,
    /// Validation images of the synthetic demo data.
    #[arg(long, default_value_t = 16)]
    val: usize,
    /// Image side of the synthetic demo data.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Training epochs of the demo detector and classifier (tiny on purpose: minutes on a CPU).
    #[arg(long, default_value_t = 3)]
    epochs: u32,
    /// Detector input size for the demo training.
    #[arg(long, default_value_t = 128)]
    imgsz: u32,
    /// Classifier input size for the demo training.
    #[arg(long, default_value_t = 64)]
    cls_imgsz: u32,
    /// Inspections sent to the demo server so that the dashboard and history show data.
    #[arg(long, default_value_t = 8)]
    inspections: usize,
    /// Address of the demo server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Stop the server once the lifecycle is done instead of serving until Ctrl-C.
    #[arg(long)]
    no_serve: bool,
    /// Do not install ONNX Runtime when it is not found (the demo then runs on Burn).
    #[arg(long)]
    no_runtime_install: bool,
    /// Inference runtime of the demo's predictions, registrations and server.
    #[command(flatten)]
    runtime: crate::inference::RuntimeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum DemoCommand {
    /// Generate a synthetic inspection data set (metal parts with scratches, dents and stains)
    /// as COCO instance segmentation plus classification image folders. Deterministic by seed.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Output folder (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Training images.
    #[arg(long, default_value_t = 240)]
    train: usize,
    /// Validation images.
    #[arg(long, default_value_t = 80)]
    val: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    match args.command {
        Some(DemoCommand::Generate(ref g)) => generate(g, ctx),
        None => lifecycle(&args, ctx).await,
    }
}

const STEPS: usize = 10;

/// The demo's inference runtime: ONNX Runtime when it is found; otherwise (with `auto`) it is
/// installed into `<home>/onnxruntime` from PyPI's wheel, so a fresh machine gets the fast
/// path without extra steps. Without Python (or network) the demo says so and runs on Burn.
/// The `sightline` subcommands the demo runs find the installed copy in the same home.
async fn demo_runtime(
    args: &Args,
    ctx: &Ctx,
) -> anyhow::Result<crate::inference::InferenceRuntime> {
    let runtime = crate::inference::InferenceRuntime::resolve(ctx, &args.runtime)?;
    if !runtime.fell_back || args.no_runtime_install {
        println!("inference runtime: {}", runtime.resolved.reason);
        runtime.notice();
        return Ok(runtime);
    }
    println!(
        "setting up ONNX Runtime (pip install onnxruntime into {})",
        sightline_onnx::runtime::install_dir(&ctx.home).display()
    );
    let home = ctx.home.clone();
    let install = crate::commands::runtime::InstallArgs {
        python: PathBuf::from("python3"),
        ort_version: crate::commands::runtime::DEFAULT_ORT_VERSION.to_string(),
        force: false,
    };
    let installed = tokio::task::spawn_blocking(move || {
        crate::commands::runtime::install(&home, &install, true)
    })
    .await
    .context("install worker stopped")?;
    match installed {
        Ok(lib) => {
            println!("    ONNX Runtime ready: {}", lib.display());
            let runtime = crate::inference::InferenceRuntime::resolve(ctx, &args.runtime)?;
            println!("inference runtime: {}", runtime.resolved.reason);
            Ok(runtime)
        }
        Err(e) => {
            println!("    could not install ONNX Runtime ({e:#}); the demo runs on Burn");
            runtime.notice();
            Ok(runtime)
        }
    }
}

/// One model of the demo: which pipeline, which task, how it is trained.
struct Pipeline {
    /// `detector` or `classifier` (the `sightline train` subcommand).
    name: &'static str,
    /// Registry task.
    task: &'static str,
    imgsz: u32,
    batch: u32,
}

/// The demo lifecycle. Every step before serving is one real `sightline` command, exactly what
/// a user would run; serving, inspections, the correction and dataset version 2 go through the
/// HTTP API of the server this command starts. Each step is skipped when a previous run
/// already did it.
async fn lifecycle(args: &Args, ctx: &Ctx) -> anyhow::Result<()> {
    let manifest = &args.manifest;
    let project = sightline_core::Manifest::load(manifest)
        .with_context(|| format!("reading the demo manifest {}", manifest.display()))?
        .project;
    let data = ctx.home.join("demo").join(format!("{project}-synthetic"));
    let runtime = demo_runtime(args, ctx).await?;

    step(1, &format!("project {project} from {}", manifest.display()));
    sub(ctx, &["project", "apply"], &[manifest.as_os_str()])?;

    step(
        2,
        &format!("synthetic inspection data in {}", data.display()),
    );
    if data.join("annotations").exists() {
        println!("    reusing existing data");
    } else {
        let (t, v, s) = (
            args.train.to_string(),
            args.val.to_string(),
            args.size.to_string(),
        );
        sub(
            ctx,
            &[
                "demo", "generate", "--train", &t, "--val", &v, "--size", &s, "--out",
            ],
            &[data.as_os_str()],
        )?;
    }

    step(3, "dataset version 1 (COCO ingestion)");
    let db = ctx.db().await?;
    if sightline_db::datasets::list(&db, &project)
        .await?
        .is_empty()
    {
        sub(
            ctx,
            &[
                "dataset",
                "ingest",
                "--project",
                &project,
                "--format",
                "coco",
                "-m",
                "demo: synthetic data v1",
            ],
            &[data.as_os_str()],
        )?;
    } else {
        println!("    reusing existing dataset version");
    }
    let v1 = sightline_db::datasets::list(&db, &project)
        .await?
        .into_iter()
        .next()
        .context("dataset version 1 is missing after ingestion")?
        .id;

    let pipelines = [
        Pipeline {
            name: "detector",
            task: "segment",
            imgsz: args.imgsz,
            batch: 8,
        },
        Pipeline {
            name: "classifier",
            task: "classify",
            imgsz: args.cls_imgsz,
            batch: 16,
        },
    ];
    let mut checkpoints = Vec::new();
    for (i, p) in pipelines.iter().enumerate() {
        step(
            4 + i,
            &format!(
                "train the {} ({} epochs at {} px, from scratch)",
                p.name, args.epochs, p.imgsz
            ),
        );
        let exp = match completed_experiment(&db, &project, p.task).await? {
            Some(e) => {
                println!("    reusing experiment {}", e.id);
                e
            }
            None => {
                let (epochs, imgsz, batch) = (
                    args.epochs.to_string(),
                    p.imgsz.to_string(),
                    p.batch.to_string(),
                );
                sub(
                    ctx,
                    &[
                        "train",
                        p.name,
                        "--weights",
                        "none",
                        "--dataset",
                        &v1,
                        "--epochs",
                        &epochs,
                        "--imgsz",
                        &imgsz,
                        "--batch-size",
                        &batch,
                        "--seed",
                        "0",
                        "--config",
                    ],
                    &[manifest.as_os_str()],
                )?;
                completed_experiment(&db, &project, p.task)
                    .await?
                    .with_context(|| format!("the {} experiment did not complete", p.name))?
            }
        };
        checkpoints.push(exp);
    }

    step(
        6,
        "register, evaluate (reports) and promote both models to production",
    );
    for (p, exp) in pipelines.iter().zip(&checkpoints) {
        let best = Path::new(&exp.dir).join("weights").join("best.safetensors");
        let model =
            match sightline_db::registry::list_model_versions(&db, Some(&project), Some(p.task))
                .await?
                .into_iter()
                .find(|m| m.experiment_id.as_deref() == Some(exp.id.as_str()))
            {
                Some(m) => {
                    println!("    reusing {} model version {}", p.task, m.version);
                    m
                }
                None => {
                    sub(
                        ctx,
                        &[
                            "register",
                            "--task",
                            p.task,
                            "--experiment",
                            &exp.id,
                            "--dataset",
                            &exp.dataset_version_id,
                            "--alias",
                            "staging",
                            "--note",
                            "sightline demo",
                            "--config",
                            &manifest.to_string_lossy(),
                            "--checkpoint",
                        ],
                        &[best.as_os_str()],
                    )?;
                    sightline_db::registry::list_model_versions(&db, Some(&project), Some(p.task))
                        .await?
                        .into_iter()
                        .find(|m| m.experiment_id.as_deref() == Some(exp.id.as_str()))
                        .with_context(|| format!("the {} model was not registered", p.name))?
                }
            };
        if sightline_db::registry::evaluations_for_model(&db, model.id, None)
            .await?
            .is_empty()
        {
            sub(
                ctx,
                &[
                    "evaluate",
                    "--dataset",
                    &exp.dataset_version_id,
                    "--split",
                    "val",
                    "--config",
                    &manifest.to_string_lossy(),
                    "--checkpoint",
                ],
                &[best.as_os_str()],
            )?;
        } else {
            println!(
                "    reusing the evaluation of {} v{}",
                p.task, model.version
            );
        }
        let production = sightline_db::registry::list_aliases(&db, Some(&project), Some(p.task))
            .await?
            .into_iter()
            .any(|a| a.alias == "production");
        if production {
            println!("    {} already has a production model", p.task);
            continue;
        }
        let version = model.version.to_string();
        let promote = [
            "model",
            "promote",
            version.as_str(),
            "--project",
            project.as_str(),
            "--task",
            p.task,
            "--to",
            "production",
        ];
        if sub(ctx, &promote, &[]).is_err() {
            println!(
                "    the gates refused the {} (a {}-epoch demo model fails the project's \
                 business rules); promoting with --force, which the registry records",
                p.name, args.epochs
            );
            let mut forced = promote.to_vec();
            forced.push("--force");
            sub(ctx, &forced, &[])?;
        }
    }

    step(7, &format!("serve on http://{}", args.addr));
    let (database_url, artifacts) = crate::commands::register::locations(ctx)?;
    let running = sightline_server::serve::start(
        sightline_server::serve::ServeOptions {
            addr: args.addr,
            database_url,
            config: sightline_server::ServerConfig {
                artifacts,
                home: ctx.home.clone(),
                ..sightline_server::ServerConfig::default()
            },
            tokens: Vec::new(),
            batch: sightline_server::BatchConfig {
                max_batch: 4,
                max_wait: Duration::from_millis(5),
                queue_capacity: 256,
            },
            log_queue: Some(1024),
            poll_interval: Duration::from_millis(1000),
        },
        Arc::new(sightline_server::vision::VisionLoader::new().with_onnxruntime(runtime.ort())),
    )
    .await
    .with_context(|| format!("starting the demo server on {}", args.addr))?;
    let base = format!("http://{}", running.addr());
    let result = online_steps(args, &project, &data, &base, &db).await;
    if let Err(e) = result {
        let _ = running.stop().await;
        return Err(e);
    }

    step(10, "summary");
    sub(ctx, &["model", "list", "--project", &project], &[])?;
    sub(ctx, &["dataset", "list", "--project", &project], &[])?;
    println!("\nThe demo project went through the whole lifecycle.");
    println!("  web UI:  {base}/ui/?project={project}");
    println!("  API:     {base}/openapi.json");
    if args.no_serve {
        running.stop().await?;
        return Ok(());
    }
    println!("listening on {base} (Ctrl-C to stop)");
    let _ = tokio::signal::ctrl_c().await;
    running.stop().await?;
    Ok(())
}

/// The latest completed experiment of a task.
async fn completed_experiment(
    db: &sightline_db::Db,
    project: &str,
    task: &str,
) -> anyhow::Result<Option<sightline_db::experiments::ExperimentRow>> {
    Ok(sightline_db::experiments::list(db, project)
        .await?
        .into_iter()
        .filter(|e| e.task == task && e.status == sightline_db::experiments::Status::Completed)
        .max_by_key(|e| e.started_at))
}

/// Steps 8–9 through the HTTP API: wait for both production models, inspect validation
/// images, correct one, and create dataset version 2 from the correction.
async fn online_steps(
    args: &Args,
    project: &str,
    data: &Path,
    base: &str,
    db: &sightline_db::Db,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")?;
    wait_deployed(&client, base, project).await?;

    step(
        8,
        &format!(
            "{} inspections through POST /projects/{project}/inspect",
            args.inspections
        ),
    );
    let logged = get_json(
        &client,
        &format!("{base}/history?project={project}&limit=1"),
    )
    .await?;
    let images = labelled_val_images(data)?;
    anyhow::ensure!(
        !images.is_empty(),
        "no validation images under {}",
        data.join("classify/val").display()
    );
    if history_items(&logged).is_empty() {
        for (i, (path, _)) in images.iter().cycle().take(args.inspections).enumerate() {
            let bytes = fs_err::read(path)?;
            let url = format!(
                "{base}/projects/{project}/inspect?line=line-a&camera=cam-1&lot=demo-lot-{}&part_id=part-{i:04}",
                1 + i / 4
            );
            let resp = client
                .post(&url)
                .header("content-type", "image/jpeg")
                .body(bytes)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            anyhow::ensure!(status.is_success(), "POST {url}: {status}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            println!(
                "    {} -> {} ({})",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                v["verdict"].as_str().unwrap_or("?"),
                v["request_id"].as_str().unwrap_or("?")
            );
        }
    } else {
        println!("    reusing the logged inspections");
    }

    step(
        9,
        "one operator correction → dataset version 2 (from corrections)",
    );
    if sightline_db::datasets::list(db, project).await?.len() >= 2 {
        println!("    reusing existing dataset version 2");
        return Ok(());
    }
    // The request log is written in the background: wait until the inspections are in.
    let mut items = Vec::new();
    for _ in 0..100 {
        let h = get_json(
            &client,
            &format!("{base}/history?project={project}&limit=50&include_response=false"),
        )
        .await?;
        items = history_items(&h);
        if items.len() >= args.inspections.min(50) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The synthetic data knows the truth (the classification folder an image came from):
    // correct an inspection the models got wrong, else the first one.
    let truth_of = |item: &serde_json::Value| {
        let sha = item["image_sha256"].as_str().unwrap_or_default();
        images
            .iter()
            .find(|(p, _)| sightline_store::sha256_file(p).is_ok_and(|h| h == sha))
            .map(|(_, label)| label.clone())
    };
    let candidates: Vec<(&serde_json::Value, String)> = items
        .iter()
        .filter(|i| !i["corrected"].as_bool().unwrap_or(false))
        .filter_map(|i| truth_of(i).map(|t| (i, t)))
        .collect();
    let (item, truth) = candidates
        .iter()
        .find(|(i, t)| i["label"].as_str() != Some(t.as_str()))
        .or_else(|| candidates.first())
        .context("no uncorrected inspection of a demo validation image in the history")?;
    let request_id = item["request_id"]
        .as_str()
        .context("history item without request_id")?;
    let correction = serde_json::json!({
        "action": "relabel",
        "image_label": truth,
        "note": "sightline demo: label from the synthetic ground truth",
    });
    post_json(
        &client,
        &format!("{base}/history/{request_id}/corrections"),
        &correction,
    )
    .await?;
    println!(
        "    {request_id}: image label {} corrected to {truth}",
        item["label"].as_str().unwrap_or("-")
    );
    let v2 = post_json(
        &client,
        &format!("{base}/projects/{project}/datasets/from-corrections"),
        &serde_json::json!({"message": "demo: corrections from production"}),
    )
    .await?;
    let short = |v: &serde_json::Value| {
        v.as_str()
            .unwrap_or("?")
            .chars()
            .take(12)
            .collect::<String>()
    };
    println!(
        "    created dataset version {} (parent {}) with {} corrected image(s)",
        short(&v2["version"]["id"]),
        short(&v2["parent"]),
        v2["images_added"]
    );
    Ok(())
}

fn history_items(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.get("items")
        .and_then(|i| i.as_array())
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
}

/// `(path, label)` of the synthetic validation images (`classify/val/<label>/*.jpg`), sorted.
fn labelled_val_images(data: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let root = data.join("classify").join("val");
    for label in fs_err::read_dir(&root)? {
        let label = label?;
        if !label.file_type()?.is_dir() {
            continue;
        }
        let name = label.file_name().to_string_lossy().into_owned();
        for f in fs_err::read_dir(label.path())? {
            let f = f?.path();
            if f.is_file() {
                out.push((f, name.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Wait until the server serves a production model for every task that has one.
async fn wait_deployed(client: &reqwest::Client, base: &str, project: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let d = get_json(client, &format!("{base}/deployments")).await?;
        let mine: Vec<_> = d
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["project"] == project)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(err) = mine
            .iter()
            .find_map(|x| x["last_error"]["message"].as_str())
        {
            anyhow::bail!("deploying the demo models failed: {err}");
        }
        if !mine.is_empty() && mine.iter().all(|x| x["serving_id"].is_i64()) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the demo models were not deployed within 120 s: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.text().await.with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).with_context(|| format!("GET {url}: invalid JSON"))
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await.with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(status.is_success(), "POST {url}: {status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn step(n: usize, what: &str) {
    println!("[{n}/{STEPS}] {what}");
}

/// Global flags forwarded to every step, so all steps use the same data dir and database.
fn global_flags(ctx: &Ctx) -> Vec<OsString> {
    vec![
        "--home".into(),
        ctx.home.clone().into_os_string(),
        "--database-url".into(),
        ctx.settings.database_url.clone().into(),
    ]
}

fn command(ctx: &Ctx, args: &[&str], paths: &[&OsStr]) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot locate the sightline executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(global_flags(ctx)).args(args).args(paths);
    Ok(cmd)
}

fn sub(ctx: &Ctx, args: &[&str], paths: &[&OsStr]) -> anyhow::Result<()> {
    let status = command(ctx, args, paths)?
        .status()
        .with_context(|| format!("cannot run `sightline {}`", args.join(" ")))?;
    anyhow::ensure!(
        status.success(),
        "`sightline {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

fn generate(args: &GenerateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let opts = sightline_synth::GenerateOptions {
        out: args.out.clone(),
        seed: args.seed,
        train: args.train,
        val: args.val,
        size: args.size,
    };
    let bar = if ctx.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((args.train + args.val) as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("rendering");
    let summary = sightline_synth::generate(&opts, &|| bar.inc(1))
        .with_context(|| format!("generating synthetic data into {}", args.out.display()))?;
    bar.finish_and_clear();
    if ctx.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "wrote {} (seed {}, {}x{} px)",
            args.out.display(),
            args.seed,
            args.size,
            args.size
        );
        for (split, n) in &summary.images {
            println!("  {split:<6} {n} images");
        }
        let fmt = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  instances:    {}", fmt(&summary.instances));
        println!("  image labels: {}", fmt(&summary.image_labels));
    }
    Ok(())
}
