//! The local fixtures: ephemeral keys of every kind ([`KeySpec::ALL`]) signed by each
//! engine compiled in (AWS-LC with feature `local-aws-lc`, RustCrypto always), and
//! OpenSSH key files of every kind made by `ssh-keygen`, all opened through the registry
//! by URI. Local keys have no wire to fault.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kmssh_backend_local::SigningEngine;
use kmssh_core::{Curve, KeySpec, KmsKey};

use crate::fixture::{Capabilities, Fixture};

/// The backend's name in `KNOWN_BACKENDS`.
pub const NAME: &str = "local";

/// Where a local fixture's keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalKeys {
    /// `local:ephemeral?…&engine=…`: a new key in memory per case (see
    /// [`kmssh_backend_local::ephemeral_uri`]).
    Ephemeral(SigningEngine),
    /// `local:PATH`: one OpenSSH key file per kind, made by `ssh-keygen`, per process.
    Files,
}

/// A local fixture: one of [`LocalKeys`].
#[derive(Debug)]
pub struct LocalFixture {
    keys: LocalKeys,
}

static RUSTCRYPTO: LocalFixture = LocalFixture {
    keys: LocalKeys::Ephemeral(SigningEngine::RustCrypto),
};
static AWS_LC: LocalFixture = LocalFixture {
    keys: LocalKeys::Ephemeral(SigningEngine::AwsLc),
};
static FILES: LocalFixture = LocalFixture {
    keys: LocalKeys::Files,
};

impl LocalFixture {
    /// Ephemeral keys signed by `engine` (which must be compiled in).
    #[must_use]
    pub fn engine(engine: SigningEngine) -> &'static Self {
        match engine {
            SigningEngine::RustCrypto => &RUSTCRYPTO,
            SigningEngine::AwsLc => &AWS_LC,
        }
    }

    /// Ephemeral keys signed by RustCrypto (every build has it).
    #[must_use]
    pub fn rustcrypto() -> &'static Self {
        &RUSTCRYPTO
    }

    /// Ephemeral keys signed by AWS-LC.
    #[cfg(feature = "local-aws-lc")]
    #[must_use]
    pub fn aws_lc() -> &'static Self {
        &AWS_LC
    }

    /// OpenSSH key files made by `ssh-keygen`.
    #[must_use]
    pub fn files() -> &'static Self {
        &FILES
    }

    /// Where its keys come from.
    #[must_use]
    pub fn keys(&self) -> LocalKeys {
        self.keys
    }
}

/// `ecdsa-p256`, `rsa-3072`, `ed25519`: a file name part.
fn spec_name(spec: KeySpec) -> String {
    match spec {
        KeySpec::Ecdsa(curve) => format!("ecdsa-{}", curve.ssh_name()),
        KeySpec::Rsa(bits) => format!("rsa-{bits}"),
        KeySpec::Ed25519 => "ed25519".to_owned(),
    }
}

/// `ssh-keygen`'s `-t` and `-b` for a kind of key.
fn ssh_keygen_type(spec: KeySpec) -> (&'static str, Option<u32>) {
    match spec {
        KeySpec::Ecdsa(Curve::P256) => ("ecdsa", Some(256)),
        KeySpec::Ecdsa(Curve::P384) => ("ecdsa", Some(384)),
        KeySpec::Ecdsa(Curve::P521) => ("ecdsa", Some(521)),
        KeySpec::Rsa(bits) => ("rsa", Some(bits)),
        KeySpec::Ed25519 => ("ed25519", None),
    }
}

/// `target/tmp/local-file-keys`, where key files are made (files older than a day, from
/// earlier runs, are removed when the first one is made).
fn key_file_dir() -> PathBuf {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/local-file-keys");
    std::fs::create_dir_all(&dir).expect("key file directory");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten().take(1000) {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 3600));
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    dir
}

/// The URI of this process's `ssh-keygen` key file of kind `spec`, made on first use.
///
/// # Panics
/// If `ssh-keygen` fails.
#[must_use]
pub fn key_file_uri(spec: KeySpec) -> String {
    static FILES: Mutex<Option<HashMap<KeySpec, String>>> = Mutex::new(None);
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    let files = files.get_or_insert_with(HashMap::new);
    if let Some(uri) = files.get(&spec) {
        return uri.clone();
    }
    let path = key_file_dir().join(format!("ca_key-{}-{}", spec_name(spec), std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let (kind, bits) = ssh_keygen_type(spec);
    let mut keygen = std::process::Command::new("ssh-keygen");
    keygen.args(["-q", "-N", "", "-t", kind]);
    if let Some(bits) = bits {
        keygen.arg("-b").arg(bits.to_string());
    }
    let out = keygen
        .arg("-f")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen -t {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uri = format!("local:{}", path.display());
    files.insert(spec, uri.clone());
    uri
}

#[async_trait]
impl Fixture for LocalFixture {
    fn name(&self) -> &'static str {
        NAME
    }

    fn key_specs(&self) -> &'static [KeySpec] {
        &KeySpec::ALL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            emulated: true,
            faults: false,
            counts_calls: false,
        }
    }

    /// The backend's full count for key files (signed by the default engine); the
    /// per-engine fixtures check each engine's encodings with fewer, and RustCrypto's RSA,
    /// which signs a few dozen 4096-bit signatures a second, with fewer still.
    fn round_trips(&self, spec: KeySpec) -> usize {
        match (self.keys, spec) {
            (LocalKeys::Files, _) => crate::cases::ROUND_TRIPS,
            (LocalKeys::Ephemeral(SigningEngine::RustCrypto), KeySpec::Rsa(_)) => 500,
            (LocalKeys::Ephemeral(_), _) => 2_000,
        }
    }

    /// Key files are reached from any process; ephemeral keys from none but this one.
    fn child_environment(&self) -> Option<Vec<(String, String)>> {
        match self.keys {
            LocalKeys::Files => Some(Vec::new()),
            LocalKeys::Ephemeral(_) => None,
        }
    }

    async fn key(&self, spec: KeySpec) -> Option<Arc<dyn KmsKey>> {
        let uri = match self.keys {
            LocalKeys::Ephemeral(engine) => {
                let named = kmssh_backend_local::ephemeral_uri(spec)
                    .unwrap_or_else(|e| panic!("no URI for {spec}: {e}"));
                format!("{named}&engine={engine}")
            }
            LocalKeys::Files => key_file_uri(spec),
        };
        crate::open_key(&uri).await
    }
}
