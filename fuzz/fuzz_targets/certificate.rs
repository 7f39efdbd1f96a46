//! OpenSSH certificates (`kmssh_pki::Certificate`): raw blobs with `from_bytes`, and
//! `*-cert.pub` lines with `from_openssh` when the input is UTF-8. Nothing may panic; a
//! certificate that parses is verified against its own signature key, and its line reads
//! back to the same certificate; one that verifies is canonical.

#![no_main]

use kmssh_pki::{Certificate, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certificate) = Certificate::from_bytes(data) {
        check(&certificate);
    }
    if let Ok(line) = std::str::from_utf8(data)
        && let Ok(certificate) = Certificate::from_openssh(line)
    {
        check(&certificate);
    }
});

fn check(certificate: &Certificate) {
    let line = certificate.cert_string("fuzz");
    let back = Certificate::from_openssh(&line).expect("a certificate's own line parses");
    assert_eq!(&back, certificate, "the line holds the same bytes");

    let cert = certificate.as_ssh_key();
    let ca = cert.signature_key().clone();
    // Now, and at its start (where the validity window does not stop the checks after it).
    let at_start = VerifyOptions {
        at: Some(cert.valid_after()),
        ..VerifyOptions::default()
    };
    for options in [VerifyOptions::default(), at_start] {
        if certificate.verify(&ca, &options).is_ok() {
            let encoded = cert.to_bytes().expect("a verified certificate encodes");
            assert_eq!(
                encoded,
                certificate.as_bytes(),
                "a verified certificate is canonical"
            );
        }
    }
    let _ = certificate.cert_type();
}
