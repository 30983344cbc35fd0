//! The role extractors (401 without a token or with an unknown one, 403 with too low a role, the
//! caller with the right one; open mode) on a small router and on the real endpoints, and the
//! generic 500 body that names the request id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sightline_db::testing::{TestDb, fresh_sqlite};
use sightline_server::auth::{Admin, Credentials, Engineer, Operator, Role, Viewer};
use sightline_server::{AppState, ServerConfig};
use tower::ServiceExt;

mod common;

const TOKENS: &[&str] = &[
    "line1:operator:operator-secret",
    "eng:engineer:engineer-secret",
    "boss:admin:admin-secret-1",
];

async fn state_with(tokens: &[&str]) -> (TestDb, tempfile::TempDir, AppState) {
    let t = fresh_sqlite().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        artifacts: dir.path().join("artifacts"),
        home: dir.path().join("home"),
        ..ServerConfig::default()
    };
    let state = common::state(&t.db, tokens, config);
    (t, dir, state)
}

/// A router whose routes answer the caller's name once its extractor let it through.
fn probe(state: AppState) -> Router {
    Router::new()
        .route("/viewer", get(|Viewer(c): Viewer| async move { c.name }))
        .route(
            "/operator",
            get(|Operator(c): Operator| async move { c.name }),
        )
        .route(
            "/engineer",
            get(|Engineer(c): Engineer| async move { c.name }),
        )
        .route("/admin", get(|Admin(c): Admin| async move { c.name }))
        .route(
            "/credentials",
            get(|c: Credentials| async move {
                c.require(Role::Engineer)
                    .map(|c| c.name)
                    .map_err(axum::response::IntoResponse::into_response)
            }),
        )
        .with_state(state)
}

async fn call(router: Router, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, v)
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_extractors_answer_401_403_or_the_caller() {
    let (_t, _dir, state) = state_with(TOKENS).await;
    let r = || probe(state.clone());

    // No token: viewers are anonymous, every other role is a 401 naming the role.
    assert_eq!(
        call(r(), "/viewer", None).await,
        (StatusCode::OK, json!("anonymous"))
    );
    for (uri, role) in [
        ("/operator", "operator"),
        ("/engineer", "engineer"),
        ("/admin", "admin"),
        ("/credentials", "engineer"),
    ] {
        assert_eq!(
            call(r(), uri, None).await,
            (
                StatusCode::UNAUTHORIZED,
                error(
                    "unauthorized",
                    &format!(
                        "this endpoint needs an API token with role {role} or higher (Authorization: Bearer <token>)"
                    )
                )
            ),
            "{uri}"
        );
    }

    // An unknown token is a 401 even where anonymous callers may read.
    for uri in ["/viewer", "/operator", "/admin", "/credentials"] {
        assert_eq!(
            call(r(), uri, Some("not-a-token")).await,
            (
                StatusCode::UNAUTHORIZED,
                error("unauthorized", "unknown API token")
            ),
            "{uri}"
        );
    }

    // Too low a role: 403 naming both roles.
    assert_eq!(
        call(r(), "/engineer", Some("operator-secret")).await,
        (
            StatusCode::FORBIDDEN,
            error(
                "forbidden",
                "token `line1` has role operator, this endpoint needs engineer or higher"
            )
        )
    );
    assert_eq!(
        call(r(), "/admin", Some("engineer-secret")).await,
        (
            StatusCode::FORBIDDEN,
            error(
                "forbidden",
                "token `eng` has role engineer, this endpoint needs admin or higher"
            )
        )
    );
    assert_eq!(
        call(r(), "/credentials", Some("operator-secret")).await.0,
        StatusCode::FORBIDDEN
    );

    // The right role, or a higher one: the caller.
    for (uri, token, name) in [
        ("/viewer", "operator-secret", "line1"),
        ("/operator", "operator-secret", "line1"),
        ("/operator", "admin-secret-1", "boss"),
        ("/engineer", "engineer-secret", "eng"),
        ("/admin", "admin-secret-1", "boss"),
        ("/credentials", "engineer-secret", "eng"),
    ] {
        assert_eq!(
            call(r(), uri, Some(token)).await,
            (StatusCode::OK, json!(name)),
            "{uri} {token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_lets_everyone_in_as_admin() {
    let (_t, _dir, state) = state_with(&[]).await;
    for uri in [
        "/viewer",
        "/operator",
        "/engineer",
        "/admin",
        "/credentials",
    ] {
        assert_eq!(
            call(probe(state.clone()), uri, None).await,
            (StatusCode::OK, json!("anonymous")),
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_check_their_roles_through_the_extractors() {
    let (_t, _dir, state) = state_with(TOKENS).await;
    let post = |uri: &str, token: Option<&str>, body: Value| {
        let mut req = Request::post(uri).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(Body::from(body.to_string())).unwrap()
    };
    let send = |req| {
        let state = state.clone();
        async move {
            let r = common::send(&state, req).await;
            (r.status, r.json())
        }
    };

    // Fixed roles: 401 without a token, 403 below the role.
    let (s, v) = send(post("/models/metrics", None, json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = send(post("/models/metrics", Some("operator-secret"), json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = send(post(
        "/projects/nope/inspect",
        Some("operator-secret"),
        json!({}),
    ))
    .await;
    assert_ne!(s, StatusCode::UNAUTHORIZED);
    assert_ne!(s, StatusCode::FORBIDDEN);

    // The role that depends on the body: `force` needs admin, after the body was read.
    let alias = json!({"project": "p", "task": "segment", "alias": "production", "version": 1, "force": true});
    let (s, v) = send(post("/aliases", Some("engineer-secret"), alias.clone())).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::FORBIDDEN,
            error(
                "forbidden",
                "token `eng` has role engineer, this endpoint needs admin or higher"
            )
        )
    );
    let (s, v) = send(post("/aliases", None, json!({"not": "an alias"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = send(post("/aliases", Some("admin-secret-1"), alias)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_generic_and_names_the_request_id() {
    let (t, _dir, state) = state_with(&[]).await;
    t.db.close().await;
    let r = common::send(
        &state,
        Request::get("/projects").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "internal");
    let message = v["error"]["message"].as_str().unwrap();
    let id = message
        .strip_prefix("internal server error (request id ")
        .and_then(|m| m.strip_suffix("); see the server log"))
        .unwrap_or_else(|| panic!("not the generic message: {message}"));
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{message}");

    // Each request has its own id.
    let again = common::send(
        &state,
        Request::get("/projects").body(Body::empty()).unwrap(),
    )
    .await;
    assert_ne!(again.json()["error"]["message"].as_str(), Some(message));
}
