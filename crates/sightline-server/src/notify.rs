//! Cross-process alias-change notification (PostgreSQL LISTEN/NOTIFY; polling elsewhere).
//!
//! Every alias change is announced by the database layer on
//! [`sightline_db::registry::ALIAS_CHANNEL`] (payload `<project>/<task>`, sent in the changing
//! transaction). [`spawn_alias_watch`] starts, per server:
//!
//! - on PostgreSQL, a listener on that channel that calls [`crate::reconcile`] as soon as a change
//!   is announced. A lost connection is logged, reconciled once (notifications may have been
//!   missed) and re-established, with a growing pause (up to 5 s) while the database is
//!   unreachable;
//! - everywhere, the periodic poll (`--poll-ms`): the only mechanism on SQLite, the fallback on
//!   PostgreSQL.
//!
//! Reconciliations started here run one at a time, so a notification arriving during a poll does
//! not start the same deployment twice.

use std::sync::Arc;
use std::time::Duration;

use sightline_db::registry::{AliasNotice, listen_aliases};
use tokio::task::JoinHandle;

use crate::{AppState, reconcile};

/// The background tasks that keep a server's deployments in line with the aliases. Dropping it
/// (or [`AliasWatch::stop`]) stops them.
#[derive(Debug)]
pub struct AliasWatch {
    tasks: Vec<JoinHandle<()>>,
}

impl AliasWatch {
    /// Stop watching.
    pub fn stop(self) {
        drop(self);
    }

    /// Whether a LISTEN task runs (PostgreSQL).
    pub fn listens(&self) -> bool {
        self.tasks.len() > 1
    }
}

impl Drop for AliasWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Reconcile, one caller at a time.
async fn reconcile_serialised(state: &AppState, gate: &tokio::sync::Mutex<()>, why: &str) {
    let _one = gate.lock().await;
    match reconcile(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deployments = n, trigger = why, "alias change picked up"),
        Err(e) => tracing::warn!(error = %e, trigger = why, "alias reconciliation failed"),
    }
}

/// Start the poll (every `poll`, at least 100 ms) and, on PostgreSQL, the LISTEN task.
pub fn spawn_alias_watch(state: &AppState, poll: Duration) -> AliasWatch {
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let mut tasks = Vec::new();
    {
        let state = state.clone();
        let gate = gate.clone();
        let every = poll.max(Duration::from_millis(100));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                reconcile_serialised(&state, &gate, "poll").await;
            }
        }));
    }
    if matches!(state.registry().db(), sightline_db::Db::Postgres(_)) {
        let state = state.clone();
        tasks.push(tokio::spawn(listen_loop(state, gate)));
    }
    AliasWatch { tasks }
}

/// LISTEN forever: reconnect with a growing pause when the database is unreachable.
async fn listen_loop(state: AppState, gate: Arc<tokio::sync::Mutex<()>>) {
    const MAX_PAUSE: Duration = Duration::from_secs(5);
    let mut pause = Duration::from_millis(250);
    loop {
        match listen_aliases(state.registry().db()).await {
            Ok(Some(mut listener)) => {
                tracing::debug!(
                    channel = sightline_db::registry::ALIAS_CHANNEL,
                    "listening for alias changes"
                );
                // Changes made while (re)connecting were not heard: catch up once.
                reconcile_serialised(&state, &gate, "listen (re)connected").await;
                loop {
                    match listener.recv().await {
                        Ok(AliasNotice::Changed(what)) => {
                            pause = Duration::from_millis(250);
                            tracing::debug!(%what, "alias change notified");
                            reconcile_serialised(&state, &gate, "notify").await;
                        }
                        Ok(AliasNotice::Reconnecting) => {
                            tracing::warn!(
                                "alias listener lost its database connection; reconnecting"
                            );
                            reconcile_serialised(&state, &gate, "listen reconnect").await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "alias listener failed; polling continues, retrying");
                            break;
                        }
                    }
                }
            }
            Ok(None) => return, // no notifications on this backend: polling only
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for alias changes; polling continues, retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
