//! `/healthz` (the process answers) and `/readyz` (it can do its job): the tracker is
//! ready while its readiness flag is set and its database answers.
//!
//! On PostgreSQL a replica whose database is gone cannot serve anything, so it should
//! leave the load balancer's rotation while its twin takes the traffic. The check is
//! one `SELECT 1` with a short timeout, and its answer is reused for
//! [`DATABASE_CHECK_FRESH_FOR`], so frequent probes from several balancers cost at
//! most one query per interval.

pub(crate) mod cached;

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use wire::api::{Done, ErrorBody};

pub use cached::{CachedCheck, DATABASE_CHECK_FRESH_FOR};

use crate::state::AppState;

/// How long the database may take to answer a check. Under the 1 s default timeout
/// of a Kubernetes probe, so a slow database reads as "not ready", not as a probe that
/// timed out.
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// The two health routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(|| async { Json(Done::success()) })).route("/readyz", get(readyz))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if !state.readiness.is_ready() {
        return not_ready("not ready");
    }
    if !state.database_check.answer(|| database_answers(&state)).await {
        return not_ready("the database does not answer");
    }
    Json(Done::success()).into_response()
}

/// One check of the database, bounded by [`DATABASE_CHECK_TIMEOUT`].
async fn database_answers(state: &AppState) -> bool {
    match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(?err, "database check failed; not ready");
            false
        }
        Err(_) => {
            tracing::warn!(timeout_ms = DATABASE_CHECK_TIMEOUT.as_millis(), "database check timed out; not ready");
            false
        }
    }
}

/// Probes ask often while a dependency is away: an answer, not a failure worth an
/// error per probe (`ApiError::Unavailable` would log one each time).
fn not_ready(message: &str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(ErrorBody::new(message))).into_response()
}
