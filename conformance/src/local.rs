//! The local fixtures: ephemeral keys signed by each engine compiled in (AWS-LC with
//! feature `local-aws-lc`, RustCrypto always), and OpenSSH key files made by `ssh-keygen`,
//! all opened through the registry by URI. Local keys have no wire to fault.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kmssh_backend_local::SigningEngine;
use kmssh_core::{Algorithm, KmsKey};

use crate::fixture::{Capabilities, Fixture};

/// The backend's name in `KNOWN_BACKENDS`.
pub const NAME: &str = "local";

/// Where a local fixture's keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalKeys {
    /// `local:ephemeral?curve=…&engine=…`: a new key in memory per case.
    Ephemeral(SigningEngine),
    /// `local:PATH`: one OpenSSH key file per curve, made by `ssh-keygen`, per process.
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

/// `p256`, `p384`, `p521`: the URI's curve parameter.
fn curve_parameter(algorithm: Algorithm) -> &'static str {
    algorithm.ssh_curve().trim_start_matches("nist")
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

/// The URI of this process's `ssh-keygen` key file on `algorithm`'s curve, made on first
/// use.
///
/// # Panics
/// If `ssh-keygen` fails.
#[must_use]
pub fn key_file_uri(algorithm: Algorithm) -> String {
    static FILES: Mutex<Option<HashMap<Algorithm, String>>> = Mutex::new(None);
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    let files = files.get_or_insert_with(HashMap::new);
    if let Some(uri) = files.get(&algorithm) {
        return uri.clone();
    }
    let path = key_file_dir().join(format!(
        "ca_key-{}-{}",
        curve_parameter(algorithm),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let bits = match algorithm {
        Algorithm::EcdsaP256Sha256 => "256",
        Algorithm::EcdsaP384Sha384 => "384",
        Algorithm::EcdsaP521Sha512 => "521",
    };
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ecdsa", "-b", bits, "-f"])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uri = format!("local:{}", path.display());
    files.insert(algorithm, uri.clone());
    uri
}

#[async_trait]
impl Fixture for LocalFixture {
    fn name(&self) -> &'static str {
        NAME
    }

    fn algorithms(&self) -> &'static [Algorithm] {
        &Algorithm::ALL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            emulated: true,
            faults: false,
            counts_calls: false,
        }
    }

    async fn key(&self, algorithm: Algorithm) -> Option<Arc<dyn KmsKey>> {
        let uri = match self.keys {
            LocalKeys::Ephemeral(engine) => format!(
                "local:ephemeral?curve={}&engine={engine}",
                curve_parameter(algorithm)
            ),
            LocalKeys::Files => key_file_uri(algorithm),
        };
        crate::open_key(&uri).await
    }
}
