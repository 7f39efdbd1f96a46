//! paramiko-cloud signing requests (`kmssh_pki::CertificateSigningRequest`): the
//! protobuf with `from_proto`, and its base64 text with `from_base64`. Nothing may panic;
//! a request that decodes must encode to one that decodes to the same request, and turn
//! into certificate parameters or a typed error.

#![no_main]

use kmssh_pki::CertificateSigningRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = CertificateSigningRequest::from_proto(data) {
        check(&request);
    }
    if let Ok(request) = CertificateSigningRequest::from_base64(data) {
        check(&request);
    }
});

fn check(request: &CertificateSigningRequest) {
    let bytes = request.to_proto().expect("a decoded request encodes");
    let back = CertificateSigningRequest::from_proto(&bytes).expect("its encoding decodes");
    assert_eq!(&back, request);
    // Our encoding is canonical: encoding what it decodes to gives the same bytes.
    assert_eq!(back.to_proto().expect("encodes again"), bytes);
    for any_principal in [false, true] {
        if let Ok(params) = request.to_parameters(any_principal) {
            let _ = params.resolve(1_700_000_000);
        }
    }
}
