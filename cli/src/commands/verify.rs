//! `kmssh verify`: a certificate checked against a CA, a principal and a moment.

use std::path::Path;

use kmssh_pki::{Certificate, VerifyOptions, ssh_keygen, ssh_public_key, unix_now};

use crate::exit::Failure;
use crate::io::{read_text, write_output};

/// Verifies `certificate` against `ca`: a CA `.pub` file, or a key URI.
pub async fn verify(
    ca: &str,
    principal: Option<String>,
    at: Option<&str>,
    certificate: &Path,
) -> Result<(), Failure> {
    let cert = Certificate::from_openssh(&read_text(certificate)?)?;
    let at = at
        .map(|text| ssh_keygen::parse_moment(text, unix_now()))
        .transpose()?;
    let ca_key = if Path::new(ca).is_file() {
        let line = read_text(Path::new(ca))?;
        kmssh_pki::ssh_key::PublicKey::from_openssh(line.trim())
            .map_err(|e| Failure::input(format!("{ca}: not an OpenSSH public key: {e}")))?
            .key_data()
            .clone()
    } else {
        ssh_public_key(kmssh_core::open(ca).await?.public_key())
    };
    cert.verify(
        &ca_key,
        &VerifyOptions {
            at,
            principal,
            ..VerifyOptions::default()
        },
    )?;
    write_output(
        None,
        format!("{}: valid\n", certificate.display()).as_bytes(),
        false,
    )
}
