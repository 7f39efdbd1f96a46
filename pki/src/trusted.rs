//! The CA keys a verifier trusts, read the way sshd reads a `TrustedUserCAKeys` file, and
//! a certificate checked against them as sshd checks it.

use ssh_key::HashAlg;
use ssh_key::public::KeyData;

use crate::error::{Error, Field, Result, VerifyFailure};
use crate::{Certificate, VerifyOptions};

/// The most CA keys [`parse_trusted_ca_keys`] takes from one text.
pub const MAX_TRUSTED_CA_KEYS: usize = 1024;

/// The CA keys of a `TrustedUserCAKeys`-style text: one OpenSSH public key per line
/// (`type base64 [comment]`, leading spaces allowed), blank lines and `#` comment lines
/// skipped.
///
/// # Errors
/// [`Error::InvalidField`] ([`Field::CaKey`]) naming the first line that is not an
/// OpenSSH public key, for a text with no key, or for more than [`MAX_TRUSTED_CA_KEYS`].
pub fn parse_trusted_ca_keys(text: &str) -> Result<Vec<KeyData>> {
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if keys.len() == MAX_TRUSTED_CA_KEYS {
            return Err(Error::field(
                Field::CaKey,
                format!("more than {MAX_TRUSTED_CA_KEYS} CA keys"),
            ));
        }
        let key = ssh_key::PublicKey::from_openssh(line).map_err(|e| {
            Error::field(
                Field::CaKey,
                format!("line {}: not an OpenSSH public key: {e}", number + 1),
            )
        })?;
        keys.push(key.key_data().clone());
    }
    if keys.is_empty() {
        return Err(Error::field(
            Field::CaKey,
            "no CA key: expected OpenSSH public key lines",
        ));
    }
    Ok(keys)
}

/// Checks `certificate` against every CA in `trusted`, as sshd does with
/// `TrustedUserCAKeys`: the certificate's own signature key must be one of them, and the
/// certificate must then pass [`Certificate::verify`] with it.
///
/// # Errors
/// [`Error::Verify`] with [`VerifyFailure::WrongCa`], naming the trusted keys'
/// fingerprints, when none of them (or an empty `trusted`) signed it; otherwise as
/// [`Certificate::verify`].
pub fn verify_with_trusted_cas(
    certificate: &Certificate,
    trusted: &[KeyData],
    options: &VerifyOptions,
) -> Result<()> {
    let signer = certificate.as_ssh_key().signature_key();
    if let Some(ca) = trusted.iter().find(|ca| *ca == signer) {
        return certificate.verify(ca, options);
    }
    if let [only] = trusted {
        return certificate.verify(only, options);
    }
    const SHOWN: usize = 4;
    let mut named: Vec<String> = trusted
        .iter()
        .take(SHOWN)
        .map(|ca| ca.fingerprint(HashAlg::Sha256).to_string())
        .collect();
    if trusted.len() > SHOWN {
        named.push(format!("{} more", trusted.len() - SHOWN));
    }
    Err(Error::Verify(VerifyFailure::WrongCa {
        signed_by: signer.fingerprint(HashAlg::Sha256).to_string(),
        trusted: if named.is_empty() {
            "(none given)".to_owned()
        } else {
            named.join(", ")
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";

    #[test]
    fn trusted_files_skip_comments_and_blank_lines() {
        let text = format!("# user CAs\n\n   {ED25519} first\n\t\n# old\n{ED25519}\n");
        let keys = parse_trusted_ca_keys(&text).expect("parses");
        assert_eq!(keys.len(), 2);
        let err = parse_trusted_ca_keys(&format!("{ED25519}\nnot a key\n")).expect_err("bad");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(err.offending_field(), Some(Field::CaKey));
        assert!(parse_trusted_ca_keys("# nothing\n\n").is_err());
        let many = format!("{ED25519}\n").repeat(MAX_TRUSTED_CA_KEYS + 1);
        assert!(parse_trusted_ca_keys(&many).is_err());
    }

    #[tokio::test]
    async fn any_trusted_ca_that_signed_the_certificate_is_enough() {
        use kmssh_backend_local::{LocalKey, LocalOptions};
        use kmssh_core::{Curve, KeySpec, KmsKey as _};
        let key = |spec| LocalKey::generate(spec, LocalOptions::default()).expect("key");
        // One CA of each family in the trusted file, as fleets migrating CAs have them.
        let (ca, other, third) = (
            key(KeySpec::Rsa(2048)),
            key(KeySpec::Ed25519),
            key(KeySpec::Ecdsa(Curve::P256)),
        );
        let subject = crate::parse_subject_key(ED25519).expect("subject");
        let mut params = crate::CertificateParameters::user();
        params.principal("alice").expect("principal");
        let cert = crate::issue(&ca, &subject, &params).await.expect("issued");
        let public = |k: &LocalKey| crate::ssh_public_key(k.public_key());
        let options = VerifyOptions::default();
        let file = format!(
            "# CAs\n{}\n\n{}\n",
            crate::pubkey_string(other.public_key(), "other"),
            crate::pubkey_string(ca.public_key(), "ours")
        );
        let trusted = parse_trusted_ca_keys(&file).expect("parses");
        verify_with_trusted_cas(&cert, &trusted, &options).expect("signed by the second");
        let err = verify_with_trusted_cas(&cert, &[public(&other), public(&third)], &options)
            .expect_err("signed by neither");
        assert!(
            matches!(err, Error::Verify(VerifyFailure::WrongCa { .. })),
            "{err}"
        );
        assert!(verify_with_trusted_cas(&cert, &[], &options).is_err());
        // The trusted CA's own checks still apply (here: a principal it does not list).
        let bob = VerifyOptions {
            principal: Some("bob".into()),
            ..VerifyOptions::default()
        };
        assert!(matches!(
            verify_with_trusted_cas(&cert, &trusted, &bob),
            Err(Error::Verify(VerifyFailure::PrincipalNotListed { .. }))
        ));
    }
}
