//! Where a message body stands as it passes through: how many bytes of what is read
//! belong to it, and when it ends. Pure framing, no IO: [`crate::forward`] moves the
//! bytes between the two sessions and asks these which of them to move.

use bytes::BufMut;

use crate::error::ProxyError;
use crate::h1::chunked::{ChunkError, Chunked};
use crate::h1::head::Framing;

/// Where a request body stands.
#[derive(Debug)]
pub(crate) enum RequestBody {
    Done,
    Length {
        left: u64,
    },
    /// `wire`: bytes of the chunked body so far, framing included, which the size
    /// limit counts (chunk extensions are bytes too).
    Chunked {
        chunked: Box<Chunked>,
        wire: u64,
        limit: u64,
    },
}

impl RequestBody {
    pub(crate) fn new(framing: Framing, limit: u64) -> Self {
        match framing {
            Framing::Empty | Framing::UntilClose => Self::Done,
            Framing::Length(left) => Self::Length { left },
            Framing::Chunked => Self::Chunked { chunked: Box::default(), wire: 0, limit },
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Counts the bytes of `available` that belong to the body; becomes `Done` at its
    /// end.
    pub(crate) fn advance(&mut self, available: &[u8]) -> Result<usize, ProxyError> {
        let used = match self {
            Self::Done => 0,
            Self::Length { left } => {
                let used = (*left).min(available.len() as u64);
                *left -= used;
                // Bounded by the slice length.
                used as usize
            }
            Self::Chunked { chunked, wire, limit } => {
                let used =
                    chunked.scan(available, |_| {}).map_err(|_| ProxyError::BadRequest("malformed chunked body"))?;
                *wire += used as u64;
                if *wire > *limit {
                    return Err(ProxyError::BodyTooLarge(*limit));
                }
                used
            }
        };
        let done = match self {
            Self::Done => true,
            Self::Length { left } => *left == 0,
            Self::Chunked { chunked, .. } => chunked.is_done(),
        };
        if done {
            *self = Self::Done;
        }
        Ok(used)
    }
}

/// Where a response body stands.
#[derive(Debug, Clone)]
pub(crate) enum ResponseBody {
    Done,
    Length { left: u64 },
    Chunked(Box<Chunked>),
    UntilClose,
}

impl ResponseBody {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Self::Done,
            Framing::Length(left) => Self::Length { left },
            Framing::Chunked => Self::Chunked(Box::default()),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Whether the body ends only when the backend closes.
    pub(crate) fn until_close(&self) -> bool {
        matches!(self, Self::UntilClose)
    }

    /// Appends the bytes of `input` that belong to the body to `out` (only the data,
    /// when decoding chunks). Returns false when `input` held more than the body: the
    /// backend broke framing, and its connection is not reused. A malformed chunked
    /// body is an error (the relay aborts).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut impl BufMut, decode: bool) -> Result<bool, ChunkError> {
        let used = match self {
            Self::Done => 0,
            Self::UntilClose => {
                out.put_slice(input);
                input.len()
            }
            Self::Length { left } => {
                // Bounded by the slice length.
                let used = (*left).min(input.len() as u64) as usize;
                out.put_slice(&input[..used]);
                *left -= used as u64;
                if *left == 0 {
                    *self = Self::Done;
                }
                used
            }
            Self::Chunked(chunked) => {
                let scanned = if decode {
                    chunked.scan(input, |data| out.put_slice(&input[data]))
                } else {
                    chunked.scan(input, |_| {})
                };
                let used = scanned.inspect_err(|err| {
                    tracing::debug!(%err, "backend sent a malformed chunked body");
                })?;
                if !decode {
                    out.put_slice(&input[..used]);
                }
                if chunked.is_done() {
                    *self = Self::Done;
                }
                used
            }
        };
        Ok(used == input.len())
    }
}
