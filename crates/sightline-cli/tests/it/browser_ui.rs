//! Browser test of the web UI (issue 8): headless Chromium driven through chromedriver
//! (WebDriver, via `fantoccini`) against the real `sightline` binary on SQLite.
//!
//! Setup through the real CLI and HTTP API: project apply, a tiny synthetic data set (`demo
//! generate` + `dataset ingest`), register the fixture YOLOv8n-seg checkpoint, `serve` with an
//! admin token, record an evaluation and promote through the gates, send inspections. Then in
//! the browser: save the token; the dashboard shows the active model version; history finds an
//! inspected image by its lot; the review page corrects it (image label, a polygon drawn with the
//! mouse); a dataset version is created from corrections and shows up on the Datasets page with
//! the request it came from; a promotion refused by a gate shows the reason on the Models page.
//! Every page is screenshotted into `target/ui-screenshots/` (not in git) for reviewers.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test fails and says so. Override the paths with `SIGHTLINE_CHROMEDRIVER` / `SIGHTLINE_CHROMIUM`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction,
};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use sightline_testkit::{
    KillOnDrop as Killed, Sightline, fixtures, free_port, spawn_server, wait_until,
};

use crate::support::SIGHTLINE;

const PROJECT: &str = "widget_line_a";
const TOKEN: &str = "ui-test-admin-secret";
const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
  business_rules:
    max_ng_ratio: 0.5
    allow_unknown: false
";

/// `target/ui-screenshots/` of this workspace (also when CARGO_TARGET_DIR points elsewhere, so
/// reviewers find them beside the sources), or `SIGHTLINE_UI_SCREENSHOTS`.
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("SIGHTLINE_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
        });
    fs_err::create_dir_all(&dir).unwrap();
    dir
}

/// A program from an override variable or the usual Debian paths.
fn find_program(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

struct Env {
    home: tempfile::TempDir,
    db_url: String,
}

impl Env {
    fn bin(&self) -> Sightline {
        Sightline::with_env_home(SIGHTLINE, self.home.path(), &self.db_url)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.bin().command(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.bin().ok(args)
    }
}

/// Minimal HTTP/1.1 client with the admin token (one request per connection).
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    sightline_testkit::http_with(addr, method, path, content_type, &auth, body)
}

fn start_server(env: &Env) -> (Killed, String) {
    spawn_server(env.cmd(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--poll-ms",
        "200",
        "--token",
        &format!("ui:admin:{TOKEN}"),
    ]))
}

/// Start chromedriver on a free port; fail with an install hint when it is missing.
fn start_chromedriver() -> (Killed, u16, PathBuf) {
    let driver = find_program(
        "SIGHTLINE_CHROMEDRIVER",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let browser = find_program(
        "SIGHTLINE_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let (Some(driver), Some(browser)) = (driver, browser) else {
        panic!(
            "browser tests need headless Chromium and its WebDriver: install the Debian packages \
             `chromium chromium-driver` (apt-get install -y chromium chromium-driver; .ci/run does \
             this), or point SIGHTLINE_CHROMEDRIVER / SIGHTLINE_CHROMIUM at them"
        );
    };
    let port = free_port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); install `chromium chromium-driver`",
                driver.display()
            )
        });
    let child = Killed(child);
    wait_until("chromedriver to listen", 20, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port, browser)
}

async fn browser(port: u16, chromium: &Path) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,768", "--lang=en-US"]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("chromedriver session (is `chromium` installed?)")
}

struct Ui {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Ui {
    /// Open a page and wait until its script has rendered (`body[data-loaded]`).
    async fn open(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
        self.wait_css("body[data-loaded]").await;
    }

    async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}`: {e}"))
    }

    /// Text of `css` (retried: pages re-render, which can make a found element stale).
    async fn text(&self, css: &str) -> String {
        self.wait_css(css).await;
        self.wait_text(css, "").await
    }

    /// Wait until `css` has text containing `needle`.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Ok(el) = self.c.find(Locator::Css(css)).await
                && let Ok(t) = el.text().await
                && t.contains(needle)
            {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "`{css}` never contained {needle:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// No error banner on the page.
    async fn no_errors(&self, page: &str) {
        let errs = self
            .c
            .find_all(Locator::Css(".message.error"))
            .await
            .unwrap();
        let mut texts = Vec::new();
        for e in errs {
            texts.push(e.text().await.unwrap_or_default());
        }
        assert!(texts.is_empty(), "{page} shows errors: {texts:?}");
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot of {name}");
        fs_err::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

#[test]
fn browser_dashboard_history_review_datasets() {
    let started = Instant::now();
    let (_driver, driver_port, chromium) = start_chromedriver();

    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        home: tempfile::tempdir().unwrap(),
        db_url: format!("sqlite://{}", dir.path().join("ui.db").display()),
    };
    let cfg = env.home.path().join("widget.yaml");
    fs_err::write(&cfg, MANIFEST).unwrap();
    let cfg = cfg.to_str().unwrap();
    env.ok(&["project", "apply", cfg]);
    let data = env.home.path().join("synthetic");
    env.ok(&[
        "demo",
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--train",
        "6",
        "--val",
        "2",
        "--size",
        "64",
    ]);
    env.ok(&[
        "dataset",
        "ingest",
        data.to_str().unwrap(),
        "--project",
        PROJECT,
        "--format",
        "coco",
        "-m",
        "synthetic v1",
    ]);
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    assert!(ckpt.is_file(), "missing fixture {}", ckpt.display());
    let model: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        cfg,
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--note",
        "fixture checkpoint",
    ]))
    .unwrap();
    let model_id = model["id"].as_i64().unwrap();

    let (_server, addr) = start_server(&env);
    // Evaluation numbers (the fixture's Ultralytics reference), then a gated promotion.
    let (s, v) = http(
        &addr,
        "POST",
        "/models/metrics",
        "application/json",
        json!({"model_version_id": model_id, "split": "val",
               "summary": {"box_map50_95": 0.419, "box_map50": 0.668, "mask_map50_95": 0.365,
                           "mask_map50": 0.654, "business_rule_failures": []}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = http(
        &addr,
        "POST",
        &format!("/models/{model_id}/deploy"),
        "application/json",
        br#"{"min_map": 0.3}"#,
    );
    assert_eq!(s, 202, "{v}");
    wait_until("the model to serve", 120, || {
        let (_, h) = http(&addr, "GET", "/health", "text/plain", b"");
        h["deployments"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["serving_version"] == 1))
    });
    let mut request_ids = Vec::new();
    for (i, name) in ["val_00000.jpg", "val_00001.jpg", "val_00002.jpg"]
        .iter()
        .enumerate()
    {
        let img = fs_err::read(fixtures().join("images").join(name)).unwrap();
        let (s, v) = http(
            &addr,
            "POST",
            &format!("/projects/{PROJECT}/inspect?line=L1&camera=top&lot=LOT-{i}"),
            "image/jpeg",
            &img,
        );
        assert_eq!(s, 200, "{v}");
        request_ids.push(v["request_id"].as_str().unwrap().to_string());
    }
    wait_until("the request log", 30, || {
        let (_, h) = http(
            &addr,
            "GET",
            &format!("/history?project={PROJECT}&limit=1"),
            "text/plain",
            b"",
        );
        h["total"] == 3
    });
    let target = request_ids[1].clone();
    let setup = started.elapsed();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(driver_port, &chromium).await;
        c.set_window_size(1366, 768).await.unwrap();
        let ui = Arc::new(Ui {
            c,
            base: format!("http://{addr}"),
            shots: screenshot_dir(),
        });
        // Drive in a task so that a failed assertion still closes the browser session.
        let run = tokio::spawn({
            let ui = ui.clone();
            async move { drive(&ui, &target).await }
        })
        .await;
        let _ = ui.c.clone().close().await;
        if let Err(e) = run {
            std::panic::resume_unwind(e.into_panic());
        }
    });
    eprintln!(
        "browser test: setup {:.1}s, total {:.1}s; screenshots in {}",
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        screenshot_dir().display()
    );
}

async fn drive(ui: &Ui, target: &str) {
    // `/` redirects to the dashboard; save the API token in the header form.
    ui.open("/").await;
    let token = ui.wait_css("#api-token").await;
    token.send_keys(TOKEN).await.unwrap();
    ui.c.find(Locator::Css("#save-token"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.wait_text(".message.notice", "saved").await;

    // Dashboard: the active detector version, its evaluation, live monitoring.
    ui.open(&format!("/ui/?project={PROJECT}")).await;
    let version = ui.text("#active-segment .active-version").await;
    assert_eq!(version, "v1");
    let card = ui.text("#active-segment").await;
    assert!(card.contains("serving"), "{card}");
    assert!(card.contains("0.365"), "mask mAP shown: {card}");
    ui.no_errors("dashboard").await;
    ui.shot("dashboard").await;

    // History: filter by lot, find the inspected image, open its detail.
    ui.open(&format!("/ui/history/?project={PROJECT}")).await;
    ui.wait_text("#results caption", "3 matching").await;
    let lot = ui.wait_css("#f-lot").await;
    lot.send_keys("LOT-1").await.unwrap();
    ui.c.find(Locator::Css("#apply-filters"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.wait_text("#results caption", "1 matching").await;
    let rows =
        ui.c.find_all(Locator::Css("#results tbody tr[data-request-id]"))
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].attr("data-request-id").await.unwrap().as_deref(),
        Some(target)
    );
    let csv = ui
        .wait_css("#csv-link")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(csv.contains("lot=LOT-1"), "{csv}");
    ui.c.find(Locator::Css(&format!("button[data-request-id='{target}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.wait_text("#response-json", target).await;
    ui.no_errors("history").await;
    ui.shot("history").await;

    // Review: change the image label and draw a polygon with the mouse, then save.
    ui.open(&format!("/ui/review/?project={PROJECT}&request={target}"))
        .await;
    ui.wait_css("#editor").await;
    let before =
        ui.c.find_all(Locator::Css("#instances li[data-index]"))
            .await
            .unwrap()
            .len();
    ui.wait_css("#image-label")
        .await
        .select_by_value("ng")
        .await
        .unwrap();
    ui.wait_css("#new-label")
        .await
        .select_by_value("scratch")
        .await
        .unwrap();
    ui.c.find(Locator::Css("#draw"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let canvas = ui.c.find(Locator::Css("#editor")).await.unwrap();
    let mut mouse = MouseActions::new("mouse".into());
    for (x, y) in [(-60.0, -40.0), (50.0, -30.0), (20.0, 50.0)] {
        mouse = mouse
            .then(PointerAction::MoveToElement {
                element: canvas.clone(),
                duration: None,
                x,
                y,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
    }
    ui.c.perform_actions(mouse).await.unwrap();
    let enter: char = Key::Enter.into();
    ui.c.perform_actions(
        KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: enter })
            .then(KeyAction::Up { value: enter }),
    )
    .await
    .unwrap();
    ui.wait_text("#draw-status", "Polygon added").await;
    let after =
        ui.c.find_all(Locator::Css("#instances li[data-index]"))
            .await
            .unwrap()
            .len();
    assert_eq!(after, before + 1, "the drawn polygon is listed");
    ui.c.find(Locator::Css("#note"))
        .await
        .unwrap()
        .send_keys("browser test")
        .await
        .unwrap();
    ui.c.find(Locator::Css("#save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.wait_text("#saved", "relabel").await;
    let who = ui.wait_text("#corrections", "ui").await;
    assert!(who.contains("ng"), "{who}");
    ui.shot("review").await;

    // Create a dataset version from the corrections.
    ui.c.find(Locator::Css("#from-corrections"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let link = ui.wait_css("#new-dataset-link").await;
    let href = link.attr("href").await.unwrap().unwrap();
    ui.no_errors("review").await;
    ui.shot("review-dataset-created").await;

    // Datasets: the new version, with the request it came from.
    ui.c.goto(&format!("{}{href}", ui.base)).await.unwrap();
    ui.wait_css("body[data-loaded]").await;
    let version = href.split("version=").nth(1).unwrap().to_string();
    assert_eq!(ui.text("#selected-version").await, version);
    ui.wait_text("#from-corrections", target).await;
    assert!(
        ui.text("#versions").await.contains(&version[..12]),
        "listed"
    );
    ui.no_errors("datasets").await;
    ui.shot("datasets").await;

    // Models: a gate that refuses shows its reason.
    ui.open(&format!("/ui/models/?project={PROJECT}&id=1"))
        .await;
    ui.wait_css("#min-map")
        .await
        .send_keys("0.99")
        .await
        .unwrap();
    ui.c.find(Locator::Css("#promote"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.wait_text("#promote-result", "Refused").await;
    ui.shot("models").await;

    // Experiments: renders (no training run in this test).
    ui.open(&format!("/ui/experiments/?project={PROJECT}"))
        .await;
    ui.no_errors("experiments").await;
    ui.shot("experiments").await;
}
