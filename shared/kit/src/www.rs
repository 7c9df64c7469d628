//! Static files of the web UI, from a folder (`www/`), without path traversal.

use std::path::Path;

use axum::Router;
use axum::handler::HandlerWithoutStateExt;
use tower_http::services::ServeDir;

/// A router that serves the files under `dir` for any path no route took, and a
/// JSON 404 for anything else. `..` and absolute paths never leave `dir`.
pub fn files<S: Clone + Send + Sync + 'static>(dir: &Path) -> Router<S> {
    let serve_dir = ServeDir::new(dir)
        .append_index_html_on_directories(false)
        .call_fallback_on_method_not_allowed(true)
        .fallback(crate::error::no_route.into_service());
    Router::new().fallback_service(serve_dir)
}
