//! kmssh's PKCS#11 module: `libkmssh_pkcs11.so`, a token whose keys are held by a KMS
//! (AWS KMS, Google Cloud KMS, Azure Key Vault) or a local kmssh key file, for OpenSSH
//! and any PKCS#11 client.
//!
//! # Use
//!
//! ```sh
//! ssh -I /usr/local/lib/libkmssh_pkcs11.so alice@host          # one login
//! ssh-keygen -D /usr/local/lib/libkmssh_pkcs11.so              # the public keys, for authorized_keys
//! ssh-add -s /usr/local/lib/libkmssh_pkcs11.so                 # into a running ssh-agent
//! ```
//!
//! In `~/.ssh/config`: `PKCS11Provider /usr/local/lib/libkmssh_pkcs11.so`. ssh-agent loads
//! providers only from its `-P` allow-list (by default `/usr/lib*/*,/usr/local/lib*/*`):
//! install the module there or start the agent with `ssh-agent -P /path/to/libkmssh_pkcs11.so`.
//! No PIN is asked: the token needs no login (the keys' credentials are the cloud's own,
//! from the usual environment: `AWS_PROFILE`, Application Default Credentials, the Azure
//! chain…). OpenSSH 9.2 skips Ed25519 keys on a token; OpenSSH ≥ 10.1 uses them.
//! `pkcs11-tool --module libkmssh_pkcs11.so --list-objects` shows what the token holds.
//!
//! # Configuration
//!
//! The file named by `KMSSH_PKCS11_CONFIG`, else `~/.config/kmssh/pkcs11.toml` (read up to
//! 256 KiB; unknown keys, duplicate labels and duplicate ids are refused, naming the file,
//! line and key):
//!
//! ```toml
//! timeout = "30s"                 # optional: each signature (and opening the keys); default 30 s
//!
//! [[key]]
//! label = "alice"                 # CKA_LABEL; ssh shows it
//! uri = "aws-kms:alias/alice"     # any kmssh key URI: local:, aws-kms:, gcp-kms:, azure-kv:
//! id = "01"                       # optional CKA_ID (hex); default: SHA-256 of the SSH key blob, first 16 bytes
//! ```
//!
//! `C_Initialize` reads it and opens every key at once, each within the timeout. A bad
//! file fails `C_Initialize` with `CKR_GENERAL_ERROR` and one stderr line naming the file
//! and line. A key that cannot be opened (unreachable KMS, no permission) is reported on
//! one stderr line (`kmssh-pkcs11: <label>: <error>`) and left out: the other keys still
//! log in, which is what ssh, trying keys in turn, can use; the line tells the user why
//! one is missing. Keys are opened once per `C_Initialize`, and dropped by `C_Finalize`.
//!
//! # Objects and mechanisms
//!
//! Each key is a `CKO_PUBLIC_KEY` and a `CKO_PRIVATE_KEY` with one `CKA_ID` and
//! `CKA_LABEL`; both have `CKA_PRIVATE` false (no login, see
//! [`token::objects`]); EC keys have `CKA_EC_PARAMS` (the curve OID) and `CKA_EC_POINT`,
//! RSA keys `CKA_MODULUS`, `CKA_PUBLIC_EXPONENT` and `CKA_MODULUS_BITS`, Ed25519 keys
//! `CKA_EC_PARAMS` = OID 1.3.101.112 and `CKA_EC_POINT` = the key in an OCTET STRING.
//! Mechanisms: `CKM_ECDSA` (+ `_SHA256/384/512`), `CKM_RSA_PKCS` on a SHA-2 `DigestInfo`
//! (+ `CKM_SHA256/384/512_RSA_PKCS`), `CKM_EDDSA`; see [`token::mechanism`].
//!
//! # Choices
//!
//! - No login: the token is `CKF_TOKEN_INITIALIZED` without `CKF_LOGIN_REQUIRED`, so
//!   OpenSSH never asks for a PIN or calls `C_Login`. A client that logs in anyway
//!   (`pkcs11-tool --login`) is let in with any PIN; the states (`CKR_USER_ALREADY_LOGGED_IN`,
//!   `C_Logout`, the session state) follow PKCS#11.
//! - Only what a KMS can sign: SHA-2 digests. No SHA-1, MD5, raw RSA (`CKM_RSA_X_509`) or
//!   PSS; `pkcs11-tool --test` passes on EC and Ed25519 keys, and on an RSA key stops at
//!   its first step, a SHA-1 `DigestInfo` (`CKR_DATA_INVALID`, with a stderr line).
//! - A key that cannot be opened is left out rather than failing `C_Initialize`.
//!
//! # Errors
//!
//! Every failure is one stderr line with its cause (`kmssh-pkcs11: alice: …`) and a
//! return value from one table ([`token::rv_for`]):
//!
//! | kmssh error kind | CK_RV |
//! |---|---|
//! | `Throttled`, `Unavailable`, `Timeout`, `BadSignature`, `NotFound`, `Unauthenticated` | `CKR_DEVICE_ERROR` |
//! | `PermissionDenied`, `InvalidKey` | `CKR_KEY_FUNCTION_NOT_PERMITTED` |
//! | `UnsupportedAlgorithm` | `CKR_MECHANISM_INVALID` |
//! | `InvalidInput` | `CKR_DATA_INVALID` |
//! | `InvalidUri`, `BackendNotCompiled`, `Config`, `Unexpected` | `CKR_GENERAL_ERROR` |
//!
//! Input refused before the key is asked: `CKR_DATA_LEN_RANGE` (an ECDSA digest over 64
//! bytes, too much input for a raw mechanism), `CKR_DATA_INVALID` (`CKM_RSA_PKCS` input
//! that is not a SHA-256/384/512 `DigestInfo`), `CKR_KEY_TYPE_INCONSISTENT` (a mechanism
//! of another key type). A failed `C_Sign` ends the operation. A panic in the module is
//! caught at the entry point and answered `CKR_GENERAL_ERROR`.
//!
//! # Layout
//!
//! [`config`] reads the file; [`token`] is the token in safe Rust (objects, mechanisms,
//! sessions, signing on a small tokio runtime); `ffi` is the C ABI, the crate's only
//! unsafe code.

pub mod config;
mod ffi;
pub mod token;

// The backends register themselves through `inventory` only when linked.
#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
#[cfg(feature = "local")]
use kmssh_backend_local as _;

pub use ffi::C_GetFunctionList;
