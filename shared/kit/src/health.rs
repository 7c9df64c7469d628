//! `/healthz` (the process answers) and `/readyz` (it can do its job).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use wire::api::{Done, ErrorBody};

/// Whether the service is ready for traffic; starts as not ready.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Already ready: for services with nothing to wait for.
    pub fn ready() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The two health routes, to merge into a service's router.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Readiness: FromRef<S>,
{
    Router::new().route("/healthz", get(|| async { Json(Done::success()) })).route("/readyz", get(readyz::<S>))
}

async fn readyz<S>(State(state): State<S>) -> Response
where
    Readiness: FromRef<S>,
{
    if Readiness::from_ref(&state).is_ready() {
        Json(Done::success()).into_response()
    } else {
        // Probes ask while the service starts: an answer, not a failure worth a warning
        // (`ApiError::Unavailable` would log one for every probe).
        (StatusCode::SERVICE_UNAVAILABLE, Json(ErrorBody::new("not ready"))).into_response()
    }
}
