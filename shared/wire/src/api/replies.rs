//! The replies every service shares: the status field, errors and bare successes.

use serde::{Deserialize, Serialize};

/// The `status` field of every reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
}

/// The body of every error reply: `{"status": "error", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub status: Status,
    pub message: String,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>) -> Self {
        Self { status: Status::Error, message: message.into() }
    }
}

/// A success with a human-readable message: `{"status": "success", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub status: Status,
    pub message: String,
}

impl Ack {
    pub fn success(message: impl Into<String>) -> Self {
        Self { status: Status::Success, message: message.into() }
    }
}

/// A bare success: `{"status": "success"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub status: Status,
}

impl Done {
    pub fn success() -> Self {
        Self { status: Status::Success }
    }
}
