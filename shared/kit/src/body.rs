//! Request bodies: a url-encoded form whatever its `Content-Type`, or JSON.
//!
//! The original page sends forms built with `URLSearchParams(...).toString()`, which
//! browsers label `text/plain;charset=UTF-8`, and JSON for broadcasts; curl users send
//! either with any label. So the label decides only when it says JSON, and otherwise
//! a body that starts with `{` is JSON and anything else is a form.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body any route accepts. Chat messages are at most 4000
/// characters; everything else is far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body parsed from a form or from JSON.
#[derive(Debug, Clone)]
pub struct Input<T>(pub T);

impl<S, T> FromRequest<S> for Input<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (headers, bytes) = read_body(request, state).await?;
        parse(&headers, &bytes).map(Input)
    }
}

/// How much of an oversized body is read and thrown away before the 413 goes out.
/// A server that answers and closes while the client is still sending makes the
/// kernel reset the connection, and the client may never see the answer; reading the
/// rest first (as nginx's lingering close does) lets it. Beyond this, we just close.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads a whole body within [`MAX_BODY_BYTES`]; a larger one is a 413.
pub async fn read_body<S: Send + Sync>(request: Request, _state: &S) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut chunks = body.into_data_stream();
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        drain(&mut chunks, 0).await;
        return Err(too_large());
    }
    let mut bytes = bytes::BytesMut::with_capacity(declared.map_or(1024, |length| length as usize));
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|err| ApiError::bad_request(format!("could not read the request body: {err}")))?;
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            drain(&mut chunks, bytes.len() + chunk.len()).await;
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((parts.headers, bytes.freeze()))
}

async fn drain(chunks: &mut axum::body::BodyDataStream, mut read: usize) {
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
    tokio::pin!(deadline);
    while read < DRAIN_LIMIT {
        tokio::select! {
            () = &mut deadline => return,
            chunk = chunks.next() => match chunk {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => return,
            },
        }
    }
}

/// Parses a body as JSON or as a form; see the module documentation for which.
pub fn parse<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("request body is not valid UTF-8"))?;
    let labelled_json = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    });
    let trimmed = text.trim_start();
    if labelled_json || trimmed.starts_with('{') {
        if trimmed.is_empty() {
            return Err(ApiError::bad_request("request body is empty: expected a JSON object"));
        }
        return serde_json::from_str(text).map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")));
    }
    let form = text.trim();
    check_form_encoding(form)?;
    serde_urlencoded::from_str(form).map_err(|err| ApiError::bad_request(form_error(form, &err.to_string())))
}

fn form_error(form: &str, message: &str) -> String {
    if form.is_empty() { format!("request body is empty: {message}") } else { format!("invalid form body: {message}") }
}

/// Percent-decoded form values must be UTF-8 too: the lenient decoder of
/// `serde_urlencoded` would turn bad bytes into U+FFFD and store garbage.
fn check_form_encoding(form: &str) -> Result<(), ApiError> {
    for pair in form.split('&') {
        for part in pair.splitn(2, '=') {
            let spaced = part.replace('+', " ");
            if percent_encoding::percent_decode_str(&spaced).decode_utf8().is_err() {
                return Err(ApiError::bad_request("form value is not valid UTF-8 once percent-decoded"));
            }
        }
    }
    Ok(())
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("request body is larger than {MAX_BODY_BYTES} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Pair {
        channel_name: String,
        message: String,
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn forms_labelled_text_plain_are_decoded_as_utf8() {
        let body = "channel_name=general&message=Xin+ch%C3%A0o+c%C3%A1c+b%E1%BA%A1n%21";
        let pair: Pair = parse(&headers("text/plain;charset=UTF-8"), body.as_bytes()).unwrap();
        assert_eq!(pair.message, "Xin chào các bạn!");
    }

    #[test]
    fn json_is_recognised_by_label_or_by_shape() {
        let body = br#"{"channel_name":"general","message":"hi"}"#;
        let by_label: Pair = parse(&headers("application/json"), body).unwrap();
        let by_shape: Pair = parse(&headers("application/x-www-form-urlencoded"), body).unwrap();
        assert_eq!(by_label, by_shape);
    }

    #[test]
    fn bad_bodies_are_clear_400s() {
        let cases: [(&str, &[u8], &str); 5] = [
            ("text/plain", b"", "empty"),
            ("text/plain", b"channel_name=general", "missing field `message`"),
            ("application/json", b"{\"channel_name\": 5, \"message\": \"x\"}", "invalid JSON body"),
            ("text/plain", b"channel_name=%FF%FE&message=x", "not valid UTF-8"),
            ("text/plain", &[0x63, 0xff, 0x3d, 0x31], "not valid UTF-8"),
        ];
        for (content_type, body, expected) in cases {
            let err = parse::<Pair>(&headers(content_type), body).unwrap_err();
            assert_eq!(err.status(), 400, "{content_type} {body:?}");
            assert!(err.to_string().contains(expected), "{err} should mention {expected}");
        }
    }
}
