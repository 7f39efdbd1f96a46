//! Key URIs (`kmssh_core::KeyUri::parse`): nothing may panic; a URI that parses is its own
//! text, splits into scheme, body and query without losing a byte, and parses again to
//! itself.

#![no_main]

use kmssh_core::KeyUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = KeyUri::parse(text) else {
        return;
    };
    assert_eq!(uri.as_str(), text);
    assert_eq!(uri.to_string(), text);
    assert_eq!(KeyUri::parse(&uri.to_string()).as_ref().ok(), Some(&uri));
    let (scheme, body) = (uri.scheme(), uri.body());
    assert!(!scheme.is_empty() && !body.is_empty());
    let rest = text
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.strip_prefix(body))
        .expect("scheme:body is the start of the URI");
    assert!(
        rest.is_empty() || rest.starts_with('?'),
        "{rest:?} follows the body"
    );
    for (name, value) in uri.query_pairs() {
        assert!(!name.contains('&') && !value.contains('&'));
        let _ = uri.param(name);
    }
    let _ = format!("{uri:?}");
});
