//! Middleware around every route: the request counters of `/metrics` ([`count_requests`]).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Count the request by method, matched route and status for `/metrics`.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    state
        .metrics()
        .record_request(&method, &route, resp.status().as_u16());
    resp
}
