//! Static files of the web UI, from a folder (`www/`), without path traversal.
//!
//! They go out compressed (brotli or gzip, as the browser accepts) with a
//! `Last-Modified` validator and `Cache-Control: no-cache`: a browser keeps its copy
//! and asks again each time, getting `304 Not Modified` until the file changes, so an
//! edited page is never served stale and an unchanged one costs one small request.

use std::path::Path;

use axum::Router;
use axum::handler::HandlerWithoutStateExt;
use axum::http::{HeaderValue, header};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// A router that serves the files under `dir` for any path no route took, and a
/// JSON 404 for anything else. `..` and absolute paths never leave `dir`.
pub fn files<S: Clone + Send + Sync + 'static>(dir: &Path) -> Router<S> {
    let serve_dir = ServeDir::new(dir)
        .append_index_html_on_directories(false)
        .call_fallback_on_method_not_allowed(true)
        .fallback(crate::error::no_route.into_service());
    Router::new()
        .fallback_service(serve_dir)
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(compression())
}

/// Compression for pages and static files (brotli or gzip, as the client accepts).
/// Never on `/events`: a compressed event stream would sit in the encoder's buffer.
pub fn compression() -> CompressionLayer {
    CompressionLayer::new()
}

/// One HTML page of the UI (`login.html`, `index.html`), read from `dir` per request
/// so edits show without a restart. Never cached: pages depend on the session.
pub async fn page(dir: &Path, name: &str) -> Result<axum::response::Response, crate::error::ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let path = dir.join(name);
    let html = tokio::fs::read_to_string(&path)
        .await
        .map_err(|err| anyhow::anyhow!("failed to read {}: {err}", path.display()))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::response::Html(html)).into_response())
}

/// Whether the client asked for JSON rather than a page or a redirect.
pub fn wants_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}
