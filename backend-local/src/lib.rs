//! kmssh's local backend: P-256, P-384 and P-521 keys held in this process, generated in
//! memory or read from a file, registered under the `local:` key URI scheme. Key files are
//! made here too ([`create_key_file`], [`create_if_missing`]).
//!
//! ```text
//! local:ephemeral?curve=p384            a new key in memory, gone when the process ends
//! local:/etc/ssh-ca/ca_key              an OpenSSH, SEC1 (`EC PRIVATE KEY`) or PKCS#8 PEM file
//! local:ca_key?engine=rustcrypto&verify=true
//! ```
//!
//! Query parameters, which override [`LocalOptions`]: `curve` (ephemeral keys only:
//! `p256` default, `p384`, `p521`), `engine` (`auto`, the default, `aws-lc` or
//! `rustcrypto`), `verify` (`true` to check every signature against the public key;
//! off by default because an in-process signer is trusted the way `ssh-keygen` trusts
//! its own key), and `permissions` (`owner`, the default, or `any`: see below).
//!
//! Key files are read as ssh reads private keys: only a regular file (a FIFO, a device
//! or a directory is refused at once, without waiting on it), at most 64 KiB, and only
//! if its mode grants group and others nothing (`chmod 600`); a file open to them is
//! refused naming its mode and the fix, unless the caller opts in with
//! [`LocalOptions::allow_unprotected`] or `local:PATH?permissions=any`.
//!
//! Signing engines: AWS-LC (feature `aws-lc`, on by default: about 5× RustCrypto's rate
//! on P-256 on one core, but ~45 ms to seed its entropy pool once per process) and the
//! pure-Rust RustCrypto `p256`/`p384`/`p521` crates. `auto` signs with RustCrypto and moves
//! to AWS-LC after [`AUTO_AWS_LC_FROM_SIGNATURES`] signatures, or starts with AWS-LC when
//! the caller expects that many ([`LocalOptions::expected_signatures`], or
//! [`kmssh_core::Options::expecting_signatures`] through the registry).
//!
//! Linking this crate registers the backend: binaries that choose it write
//! `use kmssh_backend_local as _;`.

#![forbid(unsafe_code)]

mod engine;
mod error;
mod file;
mod key;
mod load;
mod options;

pub use engine::{AUTO_AWS_LC_FROM_SIGNATURES, SigningEngine};
pub use file::{create_if_missing, create_key_file};
pub use key::LocalKey;
pub use load::SecretKey;
pub use options::{LocalLocation, LocalOptions, parse_uri};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "local";

/// The body of a URI naming a new in-memory key.
pub const EPHEMERAL: &str = "ephemeral";

kmssh_core::register_backend! {
    scheme: SCHEME,
    description: "keys in this process: local:ephemeral?curve=p256|p384|p521, or local:PATH (OpenSSH, SEC1 or PKCS#8 PEM)",
    options: LocalOptions,
    open: LocalKey::open,
}
