//! Middleware around every route: a request id for each request ([`request_id`], read back with
//! [`current_request_id`], e.g. by [`crate::ApiError`]'s response for a 500) and the request
//! counters of `/metrics` ([`count_requests`]).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Give the request a fresh id (a UUID v4) for as long as its handler runs; errors answered
/// while it runs name it ([`current_request_id`]) in their log line and 500 body.
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// The id [`request_id`] gave the request being handled; `None` outside one (a handler run
/// without the middleware, or a spawned task).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

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

/// Run `fut` as if [`request_id`] had given the request `id` (tests, and work that answers for
/// a request outside its handler).
pub async fn with_request_id<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}
