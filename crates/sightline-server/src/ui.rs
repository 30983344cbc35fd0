//! The web UI: pages from `frontend/` embedded in the binary and served under `/ui/`.

use axum::Router;

use crate::AppState;

/// Routes of the web UI (merged into [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
}
