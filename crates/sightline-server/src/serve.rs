//! Running the server: connect, deploy the `production` aliases, watch alias changes, serve
//! HTTP until Ctrl-C or SIGTERM (or [`Running::stop`]), then drain the request log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sightline_db::Db;
use sightline_registry::Registry;
use sightline_registry::bundle::BundleStore;

use crate::engine::{BatchConfig, Engine};
use crate::infer::ModelLoader;
use crate::log::LogQueue;
use crate::metrics::Metrics;
use crate::notify::spawn_alias_watch;
use crate::{AppState, ServerConfig, Tokens, app, reconcile};

/// Everything `sightline serve` configures.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address (port 0: any free port; the bound address is printed).
    pub addr: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// Handler configuration (artifact root, upload limit, NG window).
    pub config: ServerConfig,
    /// API token entries `NAME:ROLE:SECRET`.
    pub tokens: Vec<String>,
    /// Batching.
    pub batch: BatchConfig,
    /// Request-log queue capacity; `None` turns request logging off.
    pub log_queue: Option<usize>,
    /// How often aliases are re-read from the database: the only mechanism on SQLite, a
    /// fallback to LISTEN/NOTIFY on PostgreSQL.
    pub poll_interval: Duration,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Database connection or migration.
    #[error(transparent)]
    Db(#[from] sightline_db::DbError),
    /// Bad token configuration.
    #[error("{0}")]
    Tokens(String),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A server accepting connections (see [`start`]); [`Running::stop`] shuts it down gracefully.
pub struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handlers' state (engine, registry, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stop accepting, finish in-flight requests, drain the request log, close the database.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Io {
                addr: self.addr,
                source: std::io::Error::other(format!("server task failed: {e}")),
            }),
        }
    }
}

/// Connect, deploy the `production` aliases (in the background), start watching aliases
/// (LISTEN/NOTIFY on PostgreSQL plus polling, see [`crate::notify`]) and accept HTTP connections.
/// Bundles are opened in place under `opts.config.artifacts`. Returns once the listener is bound.
pub async fn start(
    opts: ServeOptions,
    loader: Arc<dyn ModelLoader>,
) -> Result<Running, ServeError> {
    let bundles = BundleStore::local(opts.config.artifacts.clone());
    start_with_bundles(opts, loader, bundles).await
}

/// [`start`] with bundles taken from `bundles` (e.g. an S3 artifact store: each deployment
/// fetches the bundle into the store's cache and verifies it before loading).
pub async fn start_with_bundles(
    opts: ServeOptions,
    loader: Arc<dyn ModelLoader>,
    bundles: BundleStore,
) -> Result<Running, ServeError> {
    let tokens = Tokens::parse(&opts.tokens).map_err(ServeError::Tokens)?;
    if tokens.is_open() {
        tracing::warn!("no API token configured: every caller may mutate (open mode)");
    }
    let db = Db::connect(&opts.database_url).await?;
    let artifacts: PathBuf = opts.config.artifacts.clone();
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(
        Engine::new(loader, opts.batch, artifacts.clone(), metrics.clone())
            .with_bundle_store(bundles.clone()),
    );
    let (log, writer) = match opts.log_queue {
        Some(cap) => {
            let (q, w) = LogQueue::start(db.clone(), artifacts.clone(), cap, metrics.clone());
            (Some(q), Some(w))
        }
        None => (None, None),
    };
    let state = AppState::new(
        Registry::new(db.clone(), artifacts).with_bundle_store(bundles),
        log.clone(),
        engine,
        metrics,
        tokens,
        opts.config.clone(),
    );
    if let Err(e) = reconcile(&state).await {
        tracing::error!(error = %e, "initial deployment failed");
    }
    let watch = spawn_alias_watch(&state, opts.poll_interval);
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ServeError::Io {
            addr: opts.addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Io {
        addr: opts.addr,
        source,
    })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(state.clone());
    let jobs = state.jobs().clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
        watch.stop();
        // training children: SIGINT (they keep their last epoch), bounded wait
        jobs.shutdown(Duration::from_secs(30)).await;
        if let Some(q) = log {
            q.close();
        }
        if let Some(w) = writer {
            w.finish().await;
        }
        db.close().await;
        served.map_err(|source| ServeError::Io {
            addr: bound,
            source,
        })
    });
    Ok(Running {
        addr: bound,
        state,
        stop: Some(stop_tx),
        task,
    })
}

/// Run until a shutdown signal (Ctrl-C, SIGTERM); the bound address is printed to stdout as
/// `listening on http://ADDR` once the server accepts connections.
pub async fn serve(opts: ServeOptions, loader: Arc<dyn ModelLoader>) -> Result<(), ServeError> {
    let bundles = BundleStore::local(opts.config.artifacts.clone());
    serve_with_bundles(opts, loader, bundles).await
}

/// [`serve`] with bundles taken from `bundles` (see [`start_with_bundles`]).
pub async fn serve_with_bundles(
    opts: ServeOptions,
    loader: Arc<dyn ModelLoader>,
    bundles: BundleStore,
) -> Result<(), ServeError> {
    let running = start_with_bundles(opts, loader, bundles).await?;
    println!("listening on http://{}", running.addr());
    shutdown_signal().await;
    running.stop().await
}
