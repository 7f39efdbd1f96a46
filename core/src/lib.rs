//! kmssh core: the [`KmsKey`] trait every backend implements, the [`Algorithm`]s and key
//! types it speaks, [`KeyUri`] parsing, the backend registry behind [`open`], the one
//! [`Error`] type, and bridges to RustCrypto's `signature` traits.
//!
//! The default features pull in no async runtime, so offline crates (`kmssh-pki`) can
//! depend on this one. The `runtime` feature adds [`RetryPolicy`] (tokio's timer) for
//! backends; `blocking` adds [`BlockingSigner`], which brings a tokio runtime.

#![forbid(unsafe_code)]

mod algorithm;
#[cfg(feature = "blocking")]
mod blocking;
mod bridge;
mod error;
mod files;
mod key;
mod known_backends;
mod options;
mod public_key;
mod registry;
#[cfg(feature = "runtime")]
mod retry;
mod settings;
mod signature;
mod uri;

pub use algorithm::{Algorithm, Curve, HashAlgorithm, KeyFamily, KeySpec, MessageDigest};
#[cfg(feature = "blocking")]
pub use blocking::BlockingSigner;
pub use bridge::{KmsSigner, x509_signature_algorithm};
pub use error::{Error, ErrorKind, ErrorStatus, Result};
pub use files::{FileWrite, InputFiles, resolved_output_path, same_file};
pub use key::{
    KmsKey, RawSigner, SigningInput, SigningPayload, VerifiedSigner, check_algorithm,
    check_message_len,
};
pub use known_backends::{KNOWN_BACKENDS, KnownBackend};
pub use options::{BackendOptions, Options};
pub use public_key::{EcPublicKey, MAX_RSA_BITS, MIN_RSA_BITS, PublicKey};
pub use registry::{Backend, OpenFuture, backend_for, backends, open, open_with};
#[cfg(feature = "runtime")]
pub use retry::RetryPolicy;
pub use settings::{env_flag, env_setting};
pub use signature::{EcdsaSignature, RsaSignature, Signature};
pub use uri::KeyUri;

/// The longest a single call to a provider may take unless a backend's options say
/// otherwise; retries run inside a separate, longer deadline (`RetryPolicy`, with the
/// `runtime` feature).
pub const DEFAULT_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Re-exported for backends implementing [`KmsKey`] and [`RawSigner`].
pub use async_trait::async_trait;
/// Re-exported so backends register with the same `inventory` this crate collects from.
pub use inventory;
/// Re-exported: key and signature types in this API come from these crates.
pub use {ed25519_dalek, p256, p384, p521, rsa, spki};
