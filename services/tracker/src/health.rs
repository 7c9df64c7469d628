//! `/healthz` (the process answers) and `/readyz` (it can do its job): the tracker is
//! ready while its readiness flag is set and its database answers.
//!
//! On PostgreSQL a replica whose database is gone cannot serve anything, so it should
//! leave the load balancer's rotation while its twin takes the traffic. The check is
//! one `SELECT 1` with a short timeout, and its answer is reused for
//! [`DATABASE_CHECK_FRESH_FOR`], so frequent probes from several balancers cost at
//! most one query per interval.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::Mutex;
use tokio::time::Instant;
use wire::api::{Done, ErrorBody};

use crate::AppState;

/// How long the database may take to answer a check. Under the 1 s default timeout
/// of a Kubernetes probe, so a slow database reads as "not ready", not as a probe that
/// timed out.
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// How long the answer of a database check is reused.
pub const DATABASE_CHECK_FRESH_FOR: Duration = Duration::from_secs(2);

/// The last answer of a check, reused while it is fresh.
pub struct CachedCheck {
    fresh_for: Duration,
    last: Mutex<Option<(Instant, bool)>>,
}

impl CachedCheck {
    pub fn new(fresh_for: Duration) -> Self {
        Self { fresh_for, last: Mutex::new(None) }
    }

    /// The last answer if it is fresh, else the answer of `check`, kept.
    pub async fn answer<F: Future<Output = bool>>(&self, check: impl FnOnce() -> F) -> bool {
        // Held across the check, so probes that arrive while one runs wait for its
        // answer instead of each sending a query of their own.
        let mut last = self.last.lock().await;
        match *last {
            Some((at, answer)) if at.elapsed() < self.fresh_for => answer,
            _ => {
                let answer = check().await;
                *last = Some((Instant::now(), answer));
                answer
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_check_is_run_once_while_its_answer_is_fresh_then_again() {
        let cached = CachedCheck::new(Duration::from_secs(2));
        let runs = AtomicUsize::new(0);
        let check = |answer: bool| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::Relaxed);
                answer
            }
        };
        assert!(cached.answer(check(true)).await);
        tokio::time::advance(Duration::from_millis(1900)).await;
        assert!(cached.answer(check(false)).await, "still the first answer");
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!cached.answer(check(false)).await, "a new answer once stale");
        assert!(!cached.answer(check(true)).await, "and that one is kept");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }
}
