//! kmssh's AWS KMS backend: signs with an asymmetric `SIGN_VERIFY` key of spec
//! `ECC_NIST_P256`, `ECC_NIST_P384` or `ECC_NIST_P521` through `aws-sdk-kms`.
//!
//! # Key URIs
//!
//! ```text
//! aws-kms:1234abcd-12ab-34cd-56ef-1234567890ab
//! aws-kms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
//! aws-kms:alias/ssh-user-ca
//! aws-kms:arn:aws:kms:eu-west-1:111122223333:alias/ssh-user-ca
//! ```
//!
//! # Configuration
//!
//! A key or alias ARN's region is used for that key. Everything else comes from the
//! standard AWS chain as `aws-config` loads it: `AWS_REGION`,
//! `AWS_PROFILE`, `AWS_ENDPOINT_URL_KMS`, and the full default credential chain
//! (environment, profiles, SSO, `credential_process`, web identity, IMDS). Code sets
//! what it wants explicitly with [`AwsKmsOptions`], either directly
//! ([`AwsKmsKey::open`]) or through the registry
//! (`kmssh_core::open_with(uri, &Options::new().with(AwsKmsOptions { … }))`); a key opened
//! by URI alone gets [`AwsKmsOptions::default`], that is, the standard chain only. A
//! credential that cannot be found or is refused is reported as a configuration or
//! permission error, never as the service being unavailable.
//!
//! # What opening checks
//!
//! Opening a key costs one `DescribeKey` and one `GetPublicKey`. The key must be
//! `Enabled`, of usage `SIGN_VERIFY`, of one of the [`SUPPORTED_KEY_SPECS`], and its public
//! key must agree with its spec and offer the matching ECDSA signing algorithm; otherwise
//! opening fails with the reason. The public key is cached for the key's lifetime, and the
//! key is pinned by ARN (an alias re-pointed later does not change which key signs).
//!
//! Each signature is one `Sign` call with `MessageType=DIGEST` (the message is hashed
//! locally, so any size works), and is verified against the cached public key before it
//! is returned. Throttling, 5xx answers, dropped connections and timed-out attempts are
//! retried with jittered exponential backoff inside a deadline; permanent errors are not.
//!
//! Linking this crate registers the `aws-kms:` scheme (`use kmssh_backend_aws as _;`).

#![forbid(unsafe_code)]

mod error;
mod key;
mod options;

pub use key::{AwsKmsKey, SUPPORTED_KEY_SPECS};
pub use options::AwsKmsOptions;

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "aws-kms";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "AWS KMS: aws-kms:<key id | key ARN | alias/NAME | alias ARN>, ECC_NIST_P256/P384/P521 SIGN_VERIFY keys",
    options: AwsKmsOptions,
    open: AwsKmsKey::open,
}
