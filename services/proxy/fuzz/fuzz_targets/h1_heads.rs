//! Request and response heads from the network: parsing and rewriting never panic,
//! and a head the proxy writes for the next hop parses again with the same framing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::h1::head::{self, Downstream, Framing, Upstream};

fuzz_target!(|bytes: &[u8]| {
    let mut slots = head::header_slots();
    if let Ok(Some(request)) = head::parse_request(bytes, &mut slots) {
        let _ = (request.cookie("weaprous_backend"), request.is_idempotent(), request.path());
        let rewrite = Upstream { client_ip: "10.0.0.1", https: false, trace: Some(("00-a-b-01", None)), close: false };
        let mut out = Vec::new();
        request.write_upstream(&rewrite, &mut out);
        let mut again = head::header_slots();
        match head::parse_request(&out, &mut again) {
            Ok(Some(rewritten)) => {
                assert_eq!(rewritten.len, out.len(), "one whole head");
                assert_eq!(rewritten.framing, request.framing, "same framing upstream");
            }
            // Adding headers may pass the header count; nothing else may fail.
            Err(head::Invalid::TooManyHeaders) => {}
            other => panic!("the rewritten head does not parse: {other:?}"),
        }
    }
    let mut slots = head::header_slots();
    if let Ok(Some(response)) = head::parse_response(bytes, &mut slots, false) {
        let _ = response.is_event_stream();
        let _ = (response.has_codings(), response.framing == Framing::Chunked);
        let rewrite = Downstream { set_cookie: Some(b"a=b"), hsts: None, close: true, keep_alive_10: false, transfer_encoding: true };
        let mut out = Vec::new();
        response.write_downstream(&rewrite, &mut out);
        let mut again = head::header_slots();
        assert!(!matches!(head::parse_response(&out, &mut again, false), Ok(None)), "a whole head");
    }
});
