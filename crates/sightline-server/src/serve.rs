//! Running the server: connect, deploy the `production` aliases, serve HTTP until Ctrl-C or
//! SIGTERM, then drain the request log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sightline_db::Db;
use sightline_registry::Registry;

use crate::engine::{BatchConfig, Engine};
use crate::infer::ModelLoader;
use crate::log::LogQueue;
use crate::metrics::Metrics;
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
    /// How often aliases are re-read from the database.
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

/// Run until a shutdown signal; the bound address is printed to stdout as
/// `listening on http://ADDR` once the server accepts connections.
pub async fn serve(opts: ServeOptions, loader: Arc<dyn ModelLoader>) -> Result<(), ServeError> {
    let tokens = Tokens::parse(&opts.tokens).map_err(ServeError::Tokens)?;
    if tokens.is_open() {
        tracing::warn!("no API token configured: every caller may mutate (open mode)");
    }
    let db = Db::connect(&opts.database_url).await?;
    let artifacts: PathBuf = opts.config.artifacts.clone();
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(Engine::new(
        loader,
        opts.batch,
        artifacts.clone(),
        metrics.clone(),
    ));
    let (log, writer) = match opts.log_queue {
        Some(cap) => {
            let (q, w) = LogQueue::start(db.clone(), artifacts.clone(), cap, metrics.clone());
            (Some(q), Some(w))
        }
        None => (None, None),
    };
    let state = AppState::new(
        Registry::new(db.clone(), artifacts),
        log.clone(),
        engine,
        metrics,
        tokens,
        opts.config.clone(),
    );
    if let Err(e) = reconcile(&state).await {
        tracing::error!(error = %e, "initial deployment failed");
    }
    let poller = {
        let state = state.clone();
        let every = opts.poll_interval.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = reconcile(&state).await {
                    tracing::warn!(error = %e, "alias poll failed");
                }
            }
        })
    };
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
    println!("listening on http://{bound}");
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    poller.abort();
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
}
