//! Chunked bodies from the network: the framing follower never panics, and feeding a
//! body in two pieces finds the same end, data and errors as feeding it whole.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::h1::chunked::Chunked;

fuzz_target!(|input: (u16, &[u8])| {
    let (split, bytes) = input;
    let whole = follow(&[bytes]);
    let at = usize::from(split) % (bytes.len() + 1);
    let pieces = follow(&[&bytes[..at], &bytes[at..]]);
    assert_eq!(whole, pieces, "split at {at}");
});

/// The body's data, where it ended, or the error, for these pieces in turn.
fn follow(pieces: &[&[u8]]) -> Result<(Vec<u8>, Option<usize>), &'static str> {
    let mut chunked = Chunked::new();
    let mut data = Vec::new();
    let mut offset = 0;
    for piece in pieces {
        let used = chunked.scan(piece, |range| data.extend_from_slice(&piece[range])).map_err(|err| err.0)?;
        offset += used;
        if chunked.is_done() {
            assert_eq!(chunked.data_len(), data.len() as u64);
            return Ok((data, Some(offset)));
        }
        assert_eq!(used, piece.len(), "all of a piece is used until the end");
    }
    Ok((data, None))
}
