//! kmssh-pki: build, encode, parse and verify OpenSSH certificates offline, signed by any
//! [`kmssh_core::KmsKey`]; and paramiko-cloud-compatible signing requests.
//!
//! No cloud SDK, no async runtime and no HTTP stack in this crate's tree: it needs only
//! `kmssh-core` and `ssh-key`-class crates.
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

mod certificate;
pub mod csr;
mod error;
mod options;
mod params;

pub use certificate::{
    Certificate, MIN_RSA_BITS, NONCE_LEN, VerifyOptions, cert_path_for, check_subject_key, issue,
    issue_at, issue_with_nonce, parse_subject_key, pubkey_string, ssh_public_key, ssh_signature,
    unix_now,
};
pub use csr::CertificateSigningRequest;
pub use error::{Error, Field, Result, VerifyFailure};
pub use options::{CriticalOption, Extension};
pub use params::{
    CertificateParameters, CertificateType, DEFAULT_BACKDATE, DEFAULT_VALIDITY, MAX_FIELD_LEN,
    MAX_PRINCIPALS, ResolvedParameters,
};
pub use ssh_key;
