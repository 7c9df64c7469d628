//! The wire crate: every type that crosses a process boundary in WeApRous.
//!
//! The JSON written here is the contract between the services and with the page in
//! `www/`; the tests at the bottom of each module pin it against literal strings.
//! Field names follow the original course project (`channels`, `messages.messages[]`,
//! `{ip, port, username}`), so its page and scripts keep working.
//!
//! # Layout
//!
//! - [`addr`]: peer addresses.
//! - [`api`]: request and reply bodies of every route, one section per service.
//! - [`names`]: validated user and channel names, and message text.
//! - [`token`]: the claims inside a session token.
//! - [`events`]: the payloads of Server-Sent Events, for browsers and between services.
//! - [`headers`]: header and cookie names shared by the services.
//!
//! Evolve by adding: new fields are `Option` or `#[serde(default)]`, and unknown fields
//! are ignored, so services of different versions can talk during a rolling deploy.

pub mod addr;
pub mod api;
pub mod events;
pub mod headers;
pub mod names;
pub mod routes;
pub mod token;

mod de;

#[cfg(test)]
pub(crate) fn check<T: serde::Serialize>(value: &T, expected: &str) {
    let actual = serde_json::to_string(value).expect("wire types always serialize");
    assert_eq!(actual, expected);
}
