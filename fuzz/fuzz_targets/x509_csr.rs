//! PKCS#10 requests (`kmssh_pki::x509::pkcs10`): DER, or PEM when the input starts with
//! `-----BEGIN`. Nothing may panic; a request that parses encodes to DER that parses and
//! encodes to itself, and its self-signature check answers the same for both.
//!
//! Not asserted: that DER input encodes back to its own bytes. `x509-cert` reads a SET OF
//! whose elements are out of DER order (an attribute's values) and sorts them when it
//! encodes; the self-signature is checked over that encoding, so such a request only ever
//! fails verification.

#![no_main]

use kmssh_pki::x509::{parse_certification_request, verify_certification_request};
use kmssh_pki::x509_cert::der::Encode as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_certification_request(data) else {
        return;
    };
    let der = request.to_der().expect("a parsed request encodes");
    let again = parse_certification_request(&der).expect("its DER parses");
    assert_eq!(
        again.to_der().expect("encodes again"),
        der,
        "our DER is canonical"
    );
    let first = verify_certification_request(&request).is_ok();
    assert_eq!(verify_certification_request(&again).is_ok(), first);
});
