//! kmssh-pki: everything issued or signed with a [`kmssh_core::KmsKey`], built and checked
//! offline:
//!
//! - OpenSSH certificates: build, encode, parse and verify ([`issue`], [`Certificate`]),
//!   and paramiko-cloud-compatible signing requests ([`csr`]);
//! - SSH signatures (`ssh-keygen -Y sign` / `-Y verify`): [`sshsig`];
//! - plain message signatures (`openssl dgst -verify`): [`message`];
//! - X.509 CA and leaf certificates and PKCS#10 checks, with the `x509` feature:
//!   `x509`.
//!
//! No cloud SDK, no async runtime and no HTTP stack in this crate's tree, with any
//! feature: it needs only `kmssh-core` and RustCrypto-class crates.
//!
//! ```no_run
//! # async fn demo(ca: &dyn kmssh_core::KmsKey) -> Result<(), kmssh_pki::Error> {
//! use kmssh_pki::{CertificateParameters, issue, parse_subject_key};
//! let subject = parse_subject_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR")?;
//! let mut params = CertificateParameters::user();
//! params.principal("alice")?.key_id("alice@example.com")?;
//! let cert = issue(ca, &subject, &params).await?;
//! println!("{}", cert.cert_string("alice"));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod batch;
mod certificate;
pub mod csr;
mod display;
mod error;
pub mod krl;
pub mod message;
mod options;
mod params;
pub mod protobuf;
pub mod ssh_keygen;
pub mod sshsig;
pub mod subject_key;
mod trusted;
#[cfg(feature = "x509")]
pub mod x509;

pub use certificate::{
    Certificate, MAX_CERTIFICATE_LEN, MIN_RSA_BITS, NONCE_LEN, VerifyOptions, cert_path_for,
    check_subject_key, issue, issue_at, issue_with_nonce, parse_subject_key, pubkey_string,
    ssh_key_type, ssh_public_key, ssh_signature, ssh_signature_algorithm, unix_now,
};
pub use csr::CertificateSigningRequest;
pub use display::{escape_for_display, sanitize_comment};
pub use error::{Error, Field, Result, SignatureFailure, VerifyFailure};
pub use message::{
    MessageSignature, digest_reader, sign_message, sign_message_digest, sign_message_with,
    verify_message, verify_message_digest,
};
pub use options::{CriticalOption, Extension};
pub use params::{
    CertificateParameters, CertificateType, DEFAULT_BACKDATE, DEFAULT_VALIDITY, MAX_FIELD_LEN,
    MAX_OPTIONS, MAX_PRINCIPALS, ResolvedParameters,
};
pub use ssh_key;
pub use sshsig::{
    SshSig, parse_sshsig, sha512_reader, sign_sshsig, sign_sshsig_digest, sign_sshsig_pem,
    sshsig_to_pem, verify_sshsig, verify_sshsig_digest,
};
pub use trusted::{MAX_TRUSTED_CA_KEYS, parse_trusted_ca_keys, verify_with_trusted_cas};
/// Re-exported with the `x509` feature: the certificate and request types [`x509`]'s API
/// takes and returns.
#[cfg(feature = "x509")]
pub use x509_cert;
