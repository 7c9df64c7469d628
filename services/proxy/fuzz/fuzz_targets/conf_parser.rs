//! Fuzzes the proxy.conf parser: it must never panic, and every error must point at
//! a line and column inside the text (or just past its end).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match proxy::conf_parser::parse(text, "10.0.0.1") {
        Ok(vhosts) => {
            assert!(!vhosts.is_empty());
            for vhost in &vhosts {
                assert!(!vhost.upstreams.is_empty());
                assert_eq!(vhost.name, vhost.name.to_ascii_lowercase());
            }
            let config = proxy::Config { vhosts, ..proxy::Config::default() };
            assert_eq!(config.validate(), Ok(()));
        }
        Err(err) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(err.line >= 1 && err.line <= lines.len(), "{err}");
            let length = lines[err.line - 1].chars().count();
            assert!(err.column >= 1 && err.column <= length + 1, "{err}");
        }
    }
});
