//! A logged-in user of a test system, and the replies they get.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

/// A reply: status, headers and the JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self { status, headers, body }
    }

    /// The `message` of an error or acknowledgement.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// A logged-in user: a client that sends their session cookie to one base URL.
#[derive(Clone)]
pub struct TestUser {
    pub name: String,
    pub base: String,
    /// The session token from the cookie.
    pub token: String,
    client: reqwest::Client,
    host: Option<String>,
    /// More cookies to send (the proxy's sticky cookie).
    extra_cookies: Option<String>,
}

impl TestUser {
    /// Logs in with a form on `base` (a peer, or the tracker) and keeps the cookie.
    pub async fn login(client: &reqwest::Client, base: &str, user: &str, password: &str) -> Self {
        let response = client
            .post(format!("{base}/login"))
            .header("accept", "application/json")
            .body(format!("username={user}&password={password}"))
            .send()
            .await
            .expect("log-in answered");
        let status = response.status();
        let token = session_token(response.headers())
            .unwrap_or_else(|| panic!("log-in of {user} on {base} gave {status} and no session cookie"));
        Self {
            name: user.to_owned(),
            base: base.to_owned(),
            token,
            client: client.clone(),
            host: None,
            extra_cookies: None,
        }
    }

    /// A user holding `token` (from a cookie), talking to `base`.
    pub fn from_token(client: &reqwest::Client, base: &str, name: &str, token: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            base: base.to_owned(),
            token: token.into(),
            client: client.clone(),
            host: None,
            extra_cookies: None,
        }
    }

    /// The same client and base with another token (forged, expired, empty).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: token.into(), ..self.clone() }
    }

    /// The same session, sent to another base URL (another peer, the proxy).
    pub fn at(&self, base: impl AsRef<str>) -> Self {
        Self { base: base.as_ref().to_owned(), ..self.clone() }
    }

    /// Sends these cookies too (`a=1; b=2`).
    pub fn with_extra_cookies(&self, cookies: &str) -> Self {
        Self { extra_cookies: (!cookies.is_empty()).then(|| cookies.to_owned()), ..self.clone() }
    }

    /// The same session through the proxy with this `Host` header.
    pub fn via(&self, base: &str, host: &str) -> Self {
        Self { base: base.to_owned(), host: Some(host.to_owned()), ..self.clone() }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut cookie = format!("{}={}", wire::headers::SESSION_COOKIE, self.token);
        if let Some(extra) = &self.extra_cookies {
            cookie = format!("{cookie}; {extra}");
        }
        let mut request = self.client.request(method, format!("{}{path}", self.base)).header("cookie", cookie);
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        request
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::read(self.request(reqwest::Method::GET, path).send().await.expect("the server answered")).await
    }

    /// POSTs a raw body (a form, as the original page sends it, labelled text/plain).
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        let request = self.request(reqwest::Method::POST, path).header("content-type", "text/plain;charset=UTF-8");
        Reply::read(request.body(body.to_owned()).send().await.expect("the server answered")).await
    }

    /// Every message of `channel`, oldest first, paging back from the latest.
    pub async fn whole_channel_history(&self, channel: &str) -> Vec<Value> {
        let mut messages: Vec<Value> = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let body = match before {
                Some(id) => format!("channel_name={channel}&limit=500&before={id}"),
                None => format!("channel_name={channel}&limit=500"),
            };
            let page = self.post("/get-channel-messages", &body).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let mut batch = page.body["messages"]["messages"].as_array().expect("a page of messages").clone();
            before = batch.first().and_then(|message| message["id"].as_u64());
            batch.append(&mut messages);
            messages = batch;
            if page.body["messages"]["has_more"] != true {
                return messages;
            }
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.request(reqwest::Method::POST, path).json(body).send().await.expect("the server answered"))
            .await
    }
}

/// The session token in a `Set-Cookie` header, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all("set-cookie").iter().filter_map(|value: &HeaderValue| value.to_str().ok()).find_map(|cookie| {
        let value = cookie.strip_prefix(wire::headers::SESSION_COOKIE)?.strip_prefix('=')?;
        let token = value.split(';').next()?;
        (!token.is_empty()).then(|| token.to_owned())
    })
}
