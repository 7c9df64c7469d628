//! Typed clients of the services the peer speaks to, one type per service.
//!
//! Callers pass typed values and get typed replies or an [`kit::error::ApiError`]:
//! route paths (from `wire::routes`), signing and trace propagation all happen in
//! here. The tracker and auth clients hold every configured instance of their service
//! ([`kit::client::endpoints::Endpoints`]) and fail over between them; the peer client
//! speaks to whichever peer a call names.

pub mod auth;
pub mod peer;
pub mod tracker;
