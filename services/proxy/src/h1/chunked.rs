//! The framing of a chunked body (RFC 9112 §7.1), followed as its bytes pass.
//!
//! The proxy relays a chunked body as it came, chunk sizes and all, so it need not
//! decode it; [`Chunked`] tells where the body ends (the connection then carries the
//! next message), how much data it held (the size limit), and, for an HTTP/1.0 client
//! that cannot read chunks, which bytes are data. The grammar is applied strictly
//! (CRLF line ends, hex sizes, bounded lines), since a proxy and a backend that read
//! a body's end differently are how requests get smuggled.

use std::ops::Range;

/// Where a chunked body stands after the bytes seen so far.
#[derive(Debug, Clone, Default)]
pub struct Chunked {
    state: State,
    /// The size being read, then the data left in the chunk.
    size: u64,
    digits: u8,
    /// Bytes of the current size line (extensions) or trailer section.
    line: usize,
    /// Data bytes seen in all.
    data: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// A body that breaks the chunked grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(pub &'static str);

/// The longest chunk-size line (with extensions), and the largest trailer section.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

impl Chunked {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last chunk and the trailer section have passed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes seen so far.
    pub fn data_len(&self) -> u64 {
        self.data
    }

    /// Follows `input` until the body ends or the input does, calling `on_data` with
    /// each run of data bytes (a range of `input`). Returns how many bytes of
    /// `input` belong to the body; bytes after its end are not looked at.
    pub fn scan(&mut self, input: &[u8], mut on_data: impl FnMut(Range<usize>)) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if self.state == State::Data {
                // Bounded by the input, so the cast back to usize is lossless.
                let take = self.size.min((input.len() - at) as u64) as usize;
                on_data(at..at + take);
                at += take;
                self.size -= take as u64;
                self.data += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = input[at];
            at += 1;
            self.state = self.step(byte)?;
        }
        Ok(at)
    }

    fn step(&mut self, byte: u8) -> Result<State, ChunkError> {
        Ok(match (self.state, byte) {
            (State::Size, digit) if digit.is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(ChunkError("chunk size too large"));
                }
                self.size = self.size << 4 | u64::from(hex_value(digit));
                self.digits += 1;
                State::Size
            }
            (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => {
                self.line = 0;
                State::Extension
            }
            (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
            (State::Size, _) => return Err(ChunkError("bad chunk size")),
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, b'\n') => return Err(ChunkError("bare LF in a chunk extension")),
            (State::Extension, _) => {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(ChunkError("chunk extension too long"));
                }
                State::Extension
            }
            (State::SizeLf, b'\n') => {
                self.digits = 0;
                self.line = 0;
                if self.size == 0 { State::TrailerStart } else { State::Data }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::Trailer, b'\n') => return Err(ChunkError("bare LF in the trailers")),
            (State::TrailerStart | State::Trailer, _) => {
                self.line += 1;
                if self.line > MAX_TRAILERS {
                    return Err(ChunkError("trailers too large"));
                }
                State::Trailer
            }
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::SizeLf | State::DataLf | State::TrailerLf | State::EndLf, _) => {
                return Err(ChunkError("CR without LF"));
            }
            (State::DataCr, _) => return Err(ChunkError("chunk longer than its size")),
            (State::Data | State::Done, _) => unreachable!("data and the end are handled by scan"),
        })
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `input` in pieces of `step` bytes; returns the data and where the body
    /// ended, or the error.
    fn scan_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, Option<usize>), ChunkError> {
        let mut chunked = Chunked::new();
        let mut data = Vec::new();
        let mut offset = 0;
        for piece in input.chunks(step) {
            let used = chunked.scan(piece, |range| data.extend_from_slice(&piece[range]))?;
            offset += used;
            if chunked.is_done() {
                assert_eq!(chunked.data_len(), data.len() as u64);
                return Ok((data, Some(offset)));
            }
            assert_eq!(used, piece.len(), "input is only left over at the end");
        }
        Ok((data, None))
    }

    fn check(input: &str, data: &str, end: Option<usize>) {
        for step in [1, 2, 3, 7, input.len().max(1)] {
            let (seen, seen_end) = scan_in_steps(input.as_bytes(), step).unwrap();
            assert_eq!((String::from_utf8(seen).unwrap().as_str(), seen_end), (data, end), "step {step}");
        }
    }

    fn refused(input: &str) -> ChunkError {
        scan_in_steps(input.as_bytes(), input.len()).unwrap_err()
    }

    #[test]
    fn bodies_end_after_the_last_chunk_and_trailers() {
        check("0\r\n\r\n", "", Some(5));
        check("5\r\nhello\r\n0\r\n\r\nNEXT", "hello", Some(15));
        check("3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", "abc0123456789", Some(39));
        check("1\r\nx\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", "x", Some(37));
        check("00f\r\n", "", None);
    }

    #[test]
    fn a_body_cut_short_is_not_done() {
        check("5\r\nhel", "hel", None);
        check("5\r\nhello\r\n0\r\n", "hello", None);
    }

    #[test]
    fn framing_errors_are_refused() {
        assert_eq!(refused("x\r\n"), ChunkError("bad chunk size"));
        assert_eq!(refused("\r\n"), ChunkError("bad chunk size"));
        assert_eq!(refused("5\nhello"), ChunkError("bad chunk size"));
        assert_eq!(refused("2\r\nabc\r\n"), ChunkError("chunk longer than its size"));
        assert_eq!(refused("1\r\na\r0"), ChunkError("CR without LF"));
        assert_eq!(refused("11111111111111111\r\n"), ChunkError("chunk size too large"));
        assert_eq!(refused("0\r\nX: 1\n\r\n"), ChunkError("bare LF in the trailers"));
        let long_extension = format!("1;{}\r\n", "e".repeat(MAX_LINE + 1));
        assert_eq!(refused(&long_extension), ChunkError("chunk extension too long"));
    }

    #[test]
    fn the_largest_size_does_not_overflow() {
        let mut chunked = Chunked::new();
        assert_eq!(chunked.scan(b"ffffffffffffffff\r\nab", |_| {}), Ok(20));
        assert_eq!(chunked.data_len(), 2);
    }
}
