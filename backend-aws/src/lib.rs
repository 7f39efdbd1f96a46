//! kmssh's AWS KMS backend: signs with an asymmetric `SIGN_VERIFY` key of spec
//! `ECC_NIST_P256`, `ECC_NIST_P384`, `ECC_NIST_P521` (ECDSA), `RSA_2048`, `RSA_3072`,
//! `RSA_4096` (PKCS#1 v1.5 with SHA-512, SHA-256 or SHA-384) or `ECC_NIST_EDWARDS25519`
//! (Ed25519) through `aws-sdk-kms`.
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
//! `Enabled`, of one of the [`SUPPORTED_KEY_SPECS`] (any other spec is refused by name:
//! `ECC_SECG_P256K1`, `HMAC_*`, `SYMMETRIC_DEFAULT`, `SM2`, `ML_DSA_*`…), of usage
//! `SIGN_VERIFY` (an RSA `ENCRYPT_DECRYPT` key is refused), its public key must agree
//! with its spec, and its `SigningAlgorithms` must include one kmssh signs with; otherwise
//! opening fails with the reason. The key then signs with those of its algorithms kmssh
//! supports, in this order: ECDSA with its curve's hash; RSA `RSASSA_PKCS1_V1_5_SHA_512`,
//! `_SHA_256`, `_SHA_384` (never PSS, which OpenSSH does not use); Ed25519
//! `ED25519_SHA_512` only (`ED25519_PH_SHA_512` is Ed25519ph, not `ssh-ed25519`). The
//! public key is cached for the key's lifetime, and the key is pinned by ARN (an alias
//! re-pointed later does not change which key signs).
//!
//! Each signature is one `Sign` call: with `MessageType=DIGEST` for ECDSA and RSA (the
//! message is hashed locally, so any size works), with `MessageType=RAW` and the message
//! itself for Ed25519, which AWS KMS signs only from 1 to [`MAX_RAW_MESSAGE_LEN`] (4096)
//! bytes: a longer message (a certificate with very many principals) or an empty one is
//! refused before any call, naming the limit. Every answer is verified against the cached public key
//! before it is returned. Throttling, 5xx answers (`KMSInternalException`,
//! `KeyUnavailableException`), dropped connections and timed-out attempts are retried with
//! jittered exponential backoff inside a deadline; permanent errors are not. Grant tokens
//! ([`AwsKmsOptions::grant_tokens`]) go with every call.
//!
//! Linking this crate registers the `aws-kms:` scheme (`use kmssh_backend_aws as _;`).

#![forbid(unsafe_code)]

mod error;
mod key;
mod options;

pub use key::{AwsKmsKey, MAX_RAW_MESSAGE_LEN, SUPPORTED_KEY_SPECS};
pub use options::{AwsKmsOptions, DEFAULT_IMDS_ATTEMPTS, DEFAULT_IMDS_TIMEOUT};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "aws-kms";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "AWS KMS: aws-kms:<key id | key ARN | alias/NAME | alias ARN>, SIGN_VERIFY keys: ECC_NIST_P256/P384/P521, RSA_2048/3072/4096, ECC_NIST_EDWARDS25519",
    options: AwsKmsOptions,
    open: AwsKmsKey::open,
}
