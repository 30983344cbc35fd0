//! The web UI: pages from `frontend/` embedded in the binary and served under `/ui/`.
//!
//! The files are compiled in by `build.rs` (a static table of `include_bytes!`), so the server
//! needs nothing on disk and no build step beyond `cargo build`. URL layout:
//!
//! - `/` and `/ui` redirect to `/ui/` (the dashboard);
//! - `/ui/<page>/` serves `frontend/app/<page>/index.html`, `/ui/<page>/<file>` serves
//!   `frontend/app/<page>/<file>`;
//! - `/ui/lib/…` and `/ui/style.css` serve `frontend/lib/…` and `frontend/style.css`.
//!
//! Lookups only ever consult the embedded table, so no request can reach the file system; paths
//! with `..`, `.` or empty segments, backslashes or NULs are refused before the lookup anyway.
//! Every file carries a content ETag; responses say `Cache-Control: no-cache` (revalidate each
//! time, answered with `304 Not Modified` when unchanged) because the file names are not
//! fingerprinted.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa::OpenApi;

use crate::AppState;
use crate::error::ApiError;

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The page `/ui/` shows.
pub const HOME_PAGE: &str = "dashboard";

/// OpenAPI doc of the web UI: empty (pages, not API endpoints), merged like every family's.
#[derive(OpenApi)]
pub struct UiDoc;

/// Routes of the web UI (merged into [`crate::app`]).
pub fn router() -> Router<AppState> {
    routes()
}

/// The UI routes over any state (they use none).
fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/{*path}", get(asset))
}

async fn home(headers: HeaderMap) -> Response {
    serve(&format!("app/{HOME_PAGE}/index.html"), &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match resolve(&path) {
        Some(file) => serve(&file, &headers),
        None => not_found(&path),
    }
}

fn not_found(path: &str) -> Response {
    ApiError::NotFound(format!("no UI file `/ui/{path}`")).into_response()
}

/// Map a path below `/ui/` to a file key in [`ASSETS`]; `None` for a path that is not safe.
pub fn resolve(path: &str) -> Option<String> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Some(format!("app/{HOME_PAGE}/index.html"));
    }
    if trimmed.contains(['\\', '\0'])
        || trimmed
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return None;
    }
    if trimmed == "style.css" || trimmed.starts_with("lib/") {
        return Some(trimmed.to_string());
    }
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    if last.contains('.') {
        Some(format!("app/{trimmed}"))
    } else {
        Some(format!("app/{trimmed}/index.html"))
    }
}

/// The embedded file under `key` (relative to `frontend/`): bytes and ETag.
pub fn lookup(key: &str) -> Option<(&'static [u8], &'static str)> {
    ASSETS
        .binary_search_by(|(k, _, _)| (*k).cmp(key))
        .ok()
        .map(|i| (ASSETS[i].1, ASSETS[i].2))
}

/// Paths of every embedded file (relative to `frontend/`).
pub fn files() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(k, _, _)| *k)
}

/// Content type by file extension.
pub fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(key: &str, headers: &HeaderMap) -> Response {
    let Some((bytes, etag)) = lookup(key) else {
        return not_found(key.strip_prefix("app/").unwrap_or(key));
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let common = [
        (header::ETAG, HeaderValue::from_static(etag)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(key)),
        )],
        common,
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn ui() -> Router {
        routes()
    }

    async fn get_path(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        ui().oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body(resp: Response) -> String {
        let b = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn every_page_and_shared_file_is_embedded() {
        let all: Vec<&str> = files().collect();
        for page in [
            "dashboard",
            "history",
            "review",
            "experiments",
            "models",
            "datasets",
        ] {
            assert!(
                all.contains(&format!("app/{page}/index.html").as_str()),
                "{page}"
            );
            assert!(
                all.contains(&format!("app/{page}/page.js").as_str()),
                "{page}"
            );
        }
        assert!(all.contains(&"style.css"));
        assert!(all.contains(&"lib/api.js"));
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(all, sorted, "lookup needs a sorted table");
    }

    #[test]
    fn resolve_maps_pages_and_refuses_traversal() {
        assert_eq!(resolve("").as_deref(), Some("app/dashboard/index.html"));
        assert_eq!(
            resolve("history/").as_deref(),
            Some("app/history/index.html")
        );
        assert_eq!(
            resolve("history").as_deref(),
            Some("app/history/index.html")
        );
        assert_eq!(
            resolve("history/page.js").as_deref(),
            Some("app/history/page.js")
        );
        assert_eq!(resolve("lib/api.js").as_deref(), Some("lib/api.js"));
        assert_eq!(resolve("style.css").as_deref(), Some("style.css"));
        for bad in [
            "../Cargo.toml",
            "lib/../../x",
            "a//b",
            "./style.css",
            "a\\b",
            "lib/.",
        ] {
            assert_eq!(resolve(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn serves_pages_with_content_types_and_cache_headers() {
        let r = get_path("/ui/", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(body(r).await.contains("<title>"));

        let r = get_path("/ui/history/", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body(r).await.contains("History"));

        let r = get_path("/ui/lib/api.js", &[]).await;
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = get_path("/ui/style.css", &[]).await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");

        let r = get_path("/ui/", &[("if-none-match", &etag)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(body(r).await.is_empty());

        let r = get_path("/", &[]).await;
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/ui/");
    }

    #[tokio::test]
    async fn unknown_assets_and_traversal_are_404() {
        for path in [
            "/ui/nope/",
            "/ui/lib/nope.js",
            "/ui/../Cargo.toml",
            "/ui/lib/../../Cargo.toml",
            "/ui/%2e%2e/%2e%2e/Cargo.toml",
            "/ui/history/..%2f..%2fCargo.toml",
            "/ui/lib/%2e%2e%2f%2e%2e%2fbuild.rs",
        ] {
            let r = get_path(path, &[]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            let text = body(r).await;
            assert!(!text.contains("[package]"), "{path}: {text}");
        }
    }
}
