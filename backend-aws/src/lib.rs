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
//! Everything comes from the standard AWS chain as `aws-config` loads it (`AWS_REGION`,
//! `AWS_PROFILE`, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`…), unless code sets it with
//! [`AwsKmsOptions`], either directly ([`AwsKmsKey::open`]) or through the registry
//! (`kmssh_core::open_with(uri, &Options::new().with(AwsKmsOptions { … }))`); a key opened
//! by URI alone gets [`AwsKmsOptions::default`], that is, the standard chain only.
//!
//! **Region.** A key or alias ARN's region is the key's region, whatever `AWS_REGION` or
//! the profile says, and when nothing names a region. An [`AwsKmsOptions::region`] that
//! contradicts the ARN is refused ([`kmssh_core::ErrorKind::Config`]); an endpoint
//! override stays as given. A key id or alias name uses the option, else `AWS_REGION`,
//! else the profile's `region`.
//!
//! **Credentials**, unless [`AwsKmsOptions::credentials`] gives static ones: the SDK's
//! default chain, in order: environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`); the profile (`AWS_PROFILE`, else `default`, in `~/.aws/config`
//! and `~/.aws/credentials`: static keys, SSO from `aws sso login`'s token cache,
//! `credential_process`, roles assumed from a source profile); web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS sets them); the ECS container
//! endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`); the EC2 instance
//! metadata service (IMDSv2), bounded to 1 s per request and 2 attempts by default
//! (`AWS_METADATA_SERVICE_TIMEOUT`, `AWS_METADATA_SERVICE_NUM_ATTEMPTS`, or the options;
//! `AWS_EC2_METADATA_DISABLED=true` skips it). The chain is resolved once when the key is
//! opened; credentials that cannot be found, a source that fails (a `credential_process`
//! exiting non-zero, an expired SSO token, STS refusing the web identity token) and
//! credentials AWS KMS refuses (`UnrecognizedClientException`, `ExpiredTokenException`,
//! `InvalidSignatureException`) are [`kmssh_core::ErrorKind::Unauthenticated`], naming
//! the sources tried; `AccessDeniedException` is
//! [`kmssh_core::ErrorKind::PermissionDenied`]. Neither is retried.
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
//! is returned. Throttling, 5xx answers (`KMSInternalException`,
//! `KeyUnavailableException`), dropped connections and timed-out attempts are retried with
//! jittered exponential backoff inside a deadline; permanent errors are not. Grant tokens
//! ([`AwsKmsOptions::grant_tokens`]) go with every call.
//!
//! Linking this crate registers the `aws-kms:` scheme (`use kmssh_backend_aws as _;`).

#![forbid(unsafe_code)]

mod error;
mod key;
mod options;

pub use key::{AwsKmsKey, SUPPORTED_KEY_SPECS};
pub use options::{AwsKmsOptions, DEFAULT_IMDS_ATTEMPTS, DEFAULT_IMDS_TIMEOUT};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "aws-kms";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "AWS KMS: aws-kms:<key id | key ARN | alias/NAME | alias ARN>, ECC_NIST_P256/P384/P521 SIGN_VERIFY keys",
    options: AwsKmsOptions,
    open: AwsKmsKey::open,
}
