//! `kmssh verify`: a certificate checked against a CA, a principal and a moment.

use std::path::Path;

use kmssh_pki::{
    Certificate, CertificateType, VerifyOptions, parse_trusted_ca_keys, ssh_keygen, ssh_public_key,
    unix_now, verify_with_trusted_cas,
};

use crate::args::CertKind;
use crate::exit::Failure;
use crate::io::{read_text, write_output};

/// Verifies `certificate` against `ca`: a file of CA public keys (one per line, as
/// `TrustedUserCAKeys`; any of them may have signed it), or a key URI.
pub async fn verify(
    ca: &str,
    principal: Option<String>,
    cert_type: Option<CertKind>,
    at: Option<&str>,
    certificate: &Path,
) -> Result<(), Failure> {
    let cert = Certificate::from_openssh(&read_text(certificate)?)?;
    let at = at
        .map(|text| ssh_keygen::parse_moment(text, unix_now()))
        .transpose()?;
    // A file lists CA keys as TrustedUserCAKeys does (any of them may have signed).
    let trusted = if Path::new(ca).is_file() {
        parse_trusted_ca_keys(&read_text(Path::new(ca))?).map_err(|e| Failure::from(e).about(ca))?
    } else {
        vec![ssh_public_key(kmssh_core::open(ca).await?.public_key())]
    };
    verify_with_trusted_cas(
        &cert,
        &trusted,
        &VerifyOptions {
            at,
            principal,
            cert_type: cert_type.map(|kind| match kind {
                CertKind::User => CertificateType::User,
                CertKind::Host => CertificateType::Host,
            }),
            ..VerifyOptions::default()
        },
    )?;
    write_output(
        None,
        format!("{}: valid\n", certificate.display()).as_bytes(),
        false,
    )
}
