//! The outgoing HTTP client: calls to other services, signed or on a user's behalf,
//! and the mapping of their failures to [`ApiError`].

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use reqwest::{RequestBuilder, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use wire::api::ErrorBody;
use wire::headers::SIGNATURE;

use crate::error::ApiError;
use crate::sign::ClusterKey;

pub mod endpoints;

/// How long a stream may stay silent before it counts as dead; servers send a
/// keep-alive every 15 s.
pub const STREAM_IDLE: Duration = Duration::from_secs(45);

/// One pooled client per service. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For long-lived streams: no overall timeout, only between reads.
    streaming: reqwest::Client,
    cluster: ClusterKey,
}

impl Client {
    pub fn new(cluster: ClusterKey, timeout: Duration) -> anyhow::Result<Self> {
        let http = build(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2).min(timeout))
                .timeout(timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
        })?;
        let streaming = build(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2).min(timeout))
                .read_timeout(STREAM_IDLE)
                .tcp_nodelay(true)
        })?;
        Ok(Self { http, streaming, cluster })
    }

    /// The plain client, for calls that need neither signature nor session.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A POST with a JSON body, signed with the cluster key.
    pub fn signed_post<T: Serialize + ?Sized>(&self, url: Url, body: &T) -> RequestBuilder {
        // Wire types always serialize; an error here would be a bug in a wire type.
        let bytes = serde_json::to_vec(body).expect("wire types serialize to JSON");
        let signature = self.cluster.sign_url(&Method::POST, &url, &bytes);
        self.http.post(url).header(header::CONTENT_TYPE, "application/json").header(SIGNATURE, signature).body(bytes)
    }

    /// A log-in or sign-up relayed to auth for a browser at `client`: signed, and
    /// naming the client (`?client=IP`), so auth counts failures per client.
    pub fn relay_to_auth<T: Serialize + ?Sized>(&self, mut url: Url, client: IpAddr, body: &T) -> RequestBuilder {
        url.query_pairs_mut().append_pair("client", &client.to_string());
        self.signed_post(url, body)
    }

    /// A GET of a long-lived stream (SSE), signed with the cluster key. It fails when
    /// nothing, not even a keep-alive, arrives for [`STREAM_IDLE`].
    pub fn signed_stream(&self, url: Url) -> RequestBuilder {
        let signature = self.cluster.sign_url(&Method::GET, &url, b"");
        self.streaming.get(url).header(SIGNATURE, signature)
    }

    /// A GET signed with the cluster key.
    pub fn signed_get(&self, url: Url) -> RequestBuilder {
        let signature = self.cluster.sign_url(&Method::GET, &url, b"");
        self.http.get(url).header(SIGNATURE, signature)
    }

    /// A POST with a JSON body on behalf of the user whose session token this is.
    pub fn user_post<T: Serialize + ?Sized>(&self, url: Url, token: &str, body: &T) -> RequestBuilder {
        self.http.post(url).bearer_auth(token).json(body)
    }

    /// A GET on behalf of the user whose session token this is.
    pub fn user_get(&self, url: Url, token: &str) -> RequestBuilder {
        self.http.get(url).bearer_auth(token)
    }
}

/// Builds a client; where the system has no CA certificates (a minimal container),
/// builds one without any, so plain-HTTP calls between services still work and only
/// HTTPS ones fail.
fn build(builder: impl Fn() -> reqwest::ClientBuilder) -> anyhow::Result<reqwest::Client> {
    match builder().build() {
        Ok(client) => Ok(client),
        Err(err) => {
            tracing::warn!(%err, "no usable CA certificates: calls over HTTPS will fail, plain HTTP works");
            Ok(builder().tls_certs_only(Vec::new()).build()?)
        }
    }
}

/// Sends a request to `service` and reads its JSON reply. A 4xx from the service is
/// passed on as it came; being down, slow or failing becomes 503, 504 or 502.
pub async fn call<T: DeserializeOwned>(request: RequestBuilder, service: &str) -> Result<T, ApiError> {
    read_reply(send(request, service).await?, service).await
}

/// Reads a service's JSON reply: the value on success, else the error it means.
pub async fn read_reply<T: DeserializeOwned>(response: Response, service: &str) -> Result<T, ApiError> {
    let status = response.status();
    let retry_after = retry_after(&response);
    let bytes =
        response.bytes().await.map_err(|err| ApiError::BadGateway(format!("{service} reply was cut off: {err}")))?;
    if status.is_success() {
        serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::BadGateway(format!("{service} sent an unexpected reply: {err}")))
    } else {
        Err(upstream_error(status, &bytes, service, retry_after))
    }
}

/// Sends a request and checks only that it succeeded.
pub async fn call_ok(request: RequestBuilder, service: &str) -> Result<(), ApiError> {
    check_reply(send(request, service).await?, service).await
}

/// Checks that a service's reply is a success, else gives the error it means.
pub async fn check_reply(response: Response, service: &str) -> Result<(), ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after(&response);
    let bytes = response.bytes().await.unwrap_or_default();
    Err(upstream_error(status, &bytes, service, retry_after))
}

/// Sends a request in a client span, with the trace context injected, so the callee's
/// span is this one's child. Named by the method alone (OpenTelemetry's HTTP client
/// convention when no route template is known); heartbeats and probes make no span
/// unless [`crate::telemetry::traced_route`] says so.
pub async fn send(request: RequestBuilder, service: &str) -> Result<Response, ApiError> {
    let (client, request) = request.build_split();
    let mut request = request.map_err(|err| ApiError::Internal(anyhow::anyhow!("bad request to {service}: {err}")))?;
    if !crate::telemetry::traced_route(request.url().path()) {
        return client.execute(request).await.map_err(|err| transport_error(&err, service));
    }
    let method = crate::telemetry::known_method(request.method().as_str());
    let span = tracing::info_span!(
        "call",
        otel.name = method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.path = request.url().path(),
        server.address = request.url().host_str().unwrap_or_default(),
        server.port = i64::from(request.url().port_or_known_default().unwrap_or_default()),
        peer.service = service,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    crate::telemetry::inject(&span, request.headers_mut());
    let outcome = client.execute(request).instrument(span.clone()).await;
    match &outcome {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", i64::from(status.as_u16()));
            if status.is_server_error() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.as_str());
            }
        }
        Err(err) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", transport_error_type(err));
        }
    }
    outcome.map_err(|err| transport_error(&err, service))
}

/// The `error.type` of a call that got no answer.
fn transport_error_type(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "_OTHER"
    }
}

/// What a failed send means for our caller.
pub fn transport_error(err: &reqwest::Error, service: &str) -> ApiError {
    if err.is_timeout() {
        ApiError::GatewayTimeout(format!("{service} did not answer in time"))
    } else if err.is_connect() {
        ApiError::Unavailable(format!("{service} is unreachable"))
    } else {
        ApiError::BadGateway(format!("{service} failed: {err}"))
    }
}

/// A `Retry-After` in whole seconds, as the rate limits send it.
fn retry_after(response: &Response) -> Option<u64> {
    response.headers().get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

fn upstream_error(status: StatusCode, bytes: &[u8], service: &str, retry_after: Option<u64>) -> ApiError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|body| body.message)
        .unwrap_or_else(|_| format!("{service} answered {status}"));
    if let (StatusCode::TOO_MANY_REQUESTS, Some(retry_after)) = (status, retry_after) {
        // A rate limit of the service, passed on with its wait.
        ApiError::RateLimited { message, retry_after }
    } else if let (StatusCode::SERVICE_UNAVAILABLE, Some(retry_after)) = (status, retry_after) {
        // Busy for a moment (auth's hashes): the caller may try again after the wait,
        // so it is passed on as it came rather than as a failure of the service.
        ApiError::Busy { message, retry_after }
    } else if status.is_client_error() {
        ApiError::Upstream { status, message }
    } else {
        ApiError::BadGateway(format!("{service} failed: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    fn error_body(message: &str) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody::new(message.to_owned())).unwrap()
    }

    #[test]
    fn a_busy_or_limited_service_is_passed_on_with_its_wait_and_a_failure_is_a_502() {
        let busy = upstream_error(StatusCode::SERVICE_UNAVAILABLE, &error_body("hashes busy"), "auth", Some(1));
        let response = busy.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");

        let limited = upstream_error(StatusCode::TOO_MANY_REQUESTS, &error_body("slow down"), "tracker", Some(7));
        let response = limited.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "7");

        // Without a wait to pass on, a 503 is the service failing.
        let down = upstream_error(StatusCode::SERVICE_UNAVAILABLE, &error_body("not ready"), "auth", None);
        assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
        assert!(down.to_string().contains("auth failed: not ready"), "{down}");
        let refused = upstream_error(StatusCode::CONFLICT, &error_body("taken"), "auth", None);
        assert_eq!(refused.status(), StatusCode::CONFLICT);
    }
}
