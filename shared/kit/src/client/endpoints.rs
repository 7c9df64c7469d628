//! Several instances of one service at one address setting, with fail-over.
//!
//! `--tracker-ip A,B` or `--auth-url A,B` (and their env vars) name every instance;
//! a name that resolves to several addresses (compose replicas, a Kubernetes
//! Service) is tried address by address by the connector itself. A call goes to the
//! instance that answered last; when that one cannot be reached, the next is tried,
//! each at most once per call, and the one that answers becomes the preferred one.
//!
//! Only failures that prove the request was not handled move a call on: a refused or
//! failed connection, and a 503 (the instance is starting or stopping). A timeout or a
//! cut reply may have been handled, so it is reported, never retried elsewhere: a
//! channel message must not be stored twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use reqwest::{RequestBuilder, Response, Url};

use crate::config::{ConfigError, base_url};
use crate::error::ApiError;

/// The instances of one service. Cloning is a reference-count bump.
#[derive(Clone, Debug)]
pub struct Endpoints {
    service: &'static str,
    bases: Arc<[Url]>,
    /// The index of the instance that answered last.
    preferred: Arc<AtomicUsize>,
}

impl Endpoints {
    /// Parses a comma-separated list of `ip:port` or URLs (at least one).
    pub fn parse(service: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let bases = raw
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(base_url)
            .collect::<Result<Vec<_>, _>>()?;
        if bases.is_empty() {
            return Err(ConfigError(format!("no address given for {service}")));
        }
        Ok(Self { service, bases: bases.into(), preferred: Arc::new(AtomicUsize::new(0)) })
    }

    /// The service's name, for errors and spans.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// How many instances are configured.
    pub fn len(&self) -> usize {
        self.bases.len()
    }

    /// Never true: parsing refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// `route` on the preferred instance.
    pub fn url(&self, route: &str) -> Url {
        self.url_on(self.preferred.load(Ordering::Relaxed) % self.bases.len(), route)
    }

    /// Moves the preference on to the instance after the current one: for callers
    /// that keep a connection (a stream) and saw it die.
    pub fn skip(&self) {
        let current = self.preferred.load(Ordering::Relaxed);
        let next = (current + 1) % self.bases.len();
        let _ = self.preferred.compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Sends `build(url)` for `route`, starting at the preferred instance and moving
    /// on while an instance cannot be reached or answers 503; the reply of the first
    /// one that answers otherwise is returned as it is.
    pub async fn send(&self, route: &str, build: impl Fn(Url) -> RequestBuilder) -> Result<Response, ApiError> {
        self.send_with(route, build, false).await
    }

    /// Like [`Endpoints::call`], for a read that changes nothing: it also moves on to
    /// the next instance after a timeout or a cut reply, since doing it twice is
    /// harmless.
    pub async fn call_read<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        build: impl Fn(Url) -> RequestBuilder,
    ) -> Result<T, ApiError> {
        let response = self.send_with(route, build, true).await?;
        super::read_reply(response, self.service).await
    }

    async fn send_with(
        &self,
        route: &str,
        build: impl Fn(Url) -> RequestBuilder,
        idempotent: bool,
    ) -> Result<Response, ApiError> {
        let count = self.bases.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let mut last_error = None;
        for offset in 0..count {
            let index = (first + offset) % count;
            match super::send(build(self.url_on(index, route)), self.service).await {
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE && offset + 1 < count => {
                    last_error = Some(ApiError::Unavailable(format!("{} is not ready", self.service)));
                }
                Ok(response) => {
                    self.prefer(first, index);
                    return Ok(response);
                }
                Err(err @ ApiError::Unavailable(_)) => last_error = Some(err),
                Err(err @ (ApiError::BadGateway(_) | ApiError::GatewayTimeout(_))) if idempotent => {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
            if count > 1 {
                tracing::debug!(service = self.service, instance = index, "instance unavailable; trying the next");
            }
        }
        Err(last_error.unwrap_or_else(|| ApiError::Unavailable(format!("{} is unreachable", self.service))))
    }

    /// Like [`Endpoints::send`], reading a JSON reply as [`super::call`] does.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        build: impl Fn(Url) -> RequestBuilder,
    ) -> Result<T, ApiError> {
        let response = self.send(route, build).await?;
        super::read_reply(response, self.service).await
    }

    /// Like [`Endpoints::send`], checking only that the call succeeded.
    pub async fn call_ok(&self, route: &str, build: impl Fn(Url) -> RequestBuilder) -> Result<(), ApiError> {
        let response = self.send(route, build).await?;
        super::check_reply(response, self.service).await
    }

    fn url_on(&self, index: usize, route: &str) -> Url {
        // Routes are fixed paths such as "/get-peers": joining them cannot fail.
        self.bases[index].join(route).expect("routes are valid URL paths")
    }

    fn prefer(&self, seen: usize, index: usize) {
        if seen != index {
            let _ = self.preferred.compare_exchange(seen, index, Ordering::Relaxed, Ordering::Relaxed);
            tracing::info!(service = self.service, instance = %self.bases[index], "switched to another instance");
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;

    use super::*;

    async fn serve(status: StatusCode, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/who", get(move || async move { (status, body) }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// An address where nothing listens: bound once, then closed.
    async fn refused() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    async fn who(endpoints: &Endpoints) -> Result<String, ApiError> {
        let client = reqwest::Client::new();
        let response = endpoints.send("/who", |url| client.get(url)).await?;
        Ok(format!("{} {}", response.status().as_u16(), response.text().await.unwrap()))
    }

    #[tokio::test]
    async fn a_dead_instance_is_passed_over_and_the_live_one_kept() {
        let (dead, live) = (refused().await, serve(StatusCode::OK, "b").await);
        let endpoints = Endpoints::parse("demo", &format!("{dead}, {live}")).unwrap();
        assert_eq!(who(&endpoints).await.unwrap(), "200 b");
        assert_eq!(endpoints.url("/who").as_str(), format!("{live}/who"), "the live one is preferred now");
        assert_eq!(who(&endpoints).await.unwrap(), "200 b");
    }

    #[tokio::test]
    async fn an_instance_that_is_not_ready_is_passed_over_but_a_client_error_is_an_answer() {
        let starting = serve(StatusCode::SERVICE_UNAVAILABLE, "starting").await;
        let refusing = serve(StatusCode::BAD_REQUEST, "no").await;
        let endpoints = Endpoints::parse("demo", &format!("{starting},{refusing}")).unwrap();
        assert_eq!(who(&endpoints).await.unwrap(), "400 no");
    }

    #[tokio::test]
    async fn when_every_instance_is_down_the_call_fails_as_unavailable() {
        let endpoints = Endpoints::parse("demo", &format!("{},{}", refused().await, refused().await)).unwrap();
        assert!(matches!(who(&endpoints).await, Err(ApiError::Unavailable(_))));
        let alone = Endpoints::parse("demo", &serve(StatusCode::SERVICE_UNAVAILABLE, "x").await).unwrap();
        assert_eq!(who(&alone).await.unwrap(), "503 x", "the last instance's answer is passed on");
    }

    #[tokio::test]
    async fn a_read_moves_on_after_a_connection_cut_mid_request_but_a_write_does_not() {
        // An instance that accepts and then drops the connection without answering,
        // as one killed mid-request does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cutting = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let live = serve(StatusCode::OK, "\"b\"").await;
        let endpoints = Endpoints::parse("demo", &format!("{cutting},{live}")).unwrap();
        let client = reqwest::Client::new();
        let read: String = endpoints.call_read("/who", |url| client.get(url)).await.unwrap();
        assert_eq!(read, "b");
        let fresh = Endpoints::parse("demo", &format!("{cutting},{live}")).unwrap();
        assert!(matches!(fresh.send("/who", |url| client.get(url)).await, Err(ApiError::BadGateway(_))));
    }

    #[test]
    fn lists_take_the_original_forms_and_refuse_nonsense() {
        let endpoints = Endpoints::parse("tracker", "127.0.0.1:9000,http://tracker-b:9000").unwrap();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints.url("/get-peers").as_str(), "http://127.0.0.1:9000/get-peers");
        endpoints.skip();
        assert_eq!(endpoints.url("/get-peers").as_str(), "http://tracker-b:9000/get-peers");
        assert!(Endpoints::parse("tracker", " , ").is_err());
        assert!(Endpoints::parse("tracker", "ftp://x").is_err());
    }
}
