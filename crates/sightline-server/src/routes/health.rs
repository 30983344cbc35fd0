//! Liveness and deployment state (`/health`, `/deployments`) and the Prometheus text at
//! `/metrics` (not in the OpenAPI document).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;

use crate::AppState;
use crate::engine::SlotStatus;

/// OpenAPI paths and schemas of this family.
#[derive(OpenApi)]
#[openapi(
    paths(health, deployments),
    components(schemas(Health, DeploymentStatus))
)]
pub struct HealthDoc;

/// Routes of this family.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/deployments", get(deployments))
}

/// Health report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Deployed models.
    pub deployments: Vec<DeploymentStatus>,
}

/// Deployment state of one project + task.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentStatus {
    /// Project.
    pub project: String,
    /// Task.
    pub task: String,
    /// State.
    #[serde(flatten)]
    pub status: SlotStatus,
}

fn deployment_list(state: &AppState) -> Vec<DeploymentStatus> {
    state
        .engine()
        .slots()
        .into_iter()
        .map(|(project, task, slot)| DeploymentStatus {
            project,
            task: task.as_str().to_string(),
            status: slot.status(),
        })
        .collect()
}

/// Liveness and what is deployed.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        deployments: deployment_list(&state),
    })
}

/// Deployment status of every slot (serving, loading, last failure).
#[utoipa::path(get, path = "/deployments", responses((status = 200, body = [DeploymentStatus])))]
async fn deployments(State(state): State<AppState>) -> Json<Vec<DeploymentStatus>> {
    Json(deployment_list(&state))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics().render();
    text.push_str(&crate::monitoring::gauges(&state).await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
