//! The agent: its keys (each with its certificates) and how it answers each request.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kmssh_core::{Algorithm, KeyFamily, KmsKey, SigningInput};
use kmssh_pki::Certificate;
use kmssh_pki::ssh_key::encoding::Encode as _;
use kmssh_pki::ssh_key::public::KeyData;

use crate::AgentError;
use crate::confirm::Confirm;
use crate::protocol::{
    IdentityEntry, Request, Response, SSH_AGENT_RSA_SHA2_256, SSH_AGENT_RSA_SHA2_512, message_name,
};

/// How long a signature may take before the agent answers `FAILURE`. Shorter than what
/// an OpenSSH login waits for (sshd's `LoginGraceTime`, 120 s by default), so ssh gets a
/// clean refusal rather than a dropped connection.
pub const DEFAULT_SIGN_TIMEOUT: Duration = Duration::from_secs(30);

/// One key the agent serves, with the certificates issued for it.
#[derive(Debug)]
pub struct AgentKey {
    key: Arc<dyn KmsKey>,
    public: KeyData,
    blob: Vec<u8>,
    comment: String,
    certificates: RwLock<Vec<Certificate>>,
}

impl AgentKey {
    fn new(key: Arc<dyn KmsKey>, comment: String) -> Result<Self, AgentError> {
        let public = kmssh_pki::ssh_public_key(key.public_key());
        let blob = public.encode_vec().map_err(|e| {
            AgentError::Key(format!("{}: cannot encode its public key: {e}", key.uri()))
        })?;
        Ok(Self {
            key,
            public,
            blob,
            comment,
            certificates: RwLock::new(Vec::new()),
        })
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &Arc<dyn KmsKey> {
        &self.key
    }

    /// Its SSH public key.
    #[must_use]
    pub fn public_key(&self) -> &KeyData {
        &self.public
    }

    /// The comment it is listed with.
    #[must_use]
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The certificates currently listed with it.
    #[must_use]
    pub fn certificates(&self) -> Vec<Certificate> {
        self.certificates
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces its certificates (a renewal). Each must certify this key.
    ///
    /// # Errors
    /// [`AgentError::Certificate`] for a certificate of another key; nothing changes then.
    pub fn set_certificates(&self, certificates: Vec<Certificate>) -> Result<(), AgentError> {
        for certificate in &certificates {
            self.check_certifies(certificate)?;
        }
        *self
            .certificates
            .write()
            .unwrap_or_else(PoisonError::into_inner) = certificates;
        Ok(())
    }

    fn check_certifies(&self, certificate: &Certificate) -> Result<(), AgentError> {
        if certificate.as_ssh_key().public_key() == &self.public {
            Ok(())
        } else {
            Err(AgentError::Certificate(format!(
                "certificate `{}` is for another key than {}",
                certificate.as_ssh_key().key_id(),
                self.key.uri()
            )))
        }
    }

    /// Whether `blob` is this key or one of its certificates: ssh names the plain key in
    /// a sign request even when it logs in with the certificate.
    fn matches(&self, blob: &[u8]) -> bool {
        blob == self.blob.as_slice()
            || self
                .certificates
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|c| c.as_bytes() == blob)
    }
}

/// How the agent behaves.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The longest a signature may take ([`DEFAULT_SIGN_TIMEOUT`]).
    pub sign_timeout: Duration,
    /// A command that must approve each signature (exit status 0), like `ssh-add -c`.
    pub confirm: Option<Confirm>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            sign_timeout: DEFAULT_SIGN_TIMEOUT,
            confirm: None,
        }
    }
}

/// An ssh-agent serving KMS-held keys: lists them with their certificates and signs
/// through their backends. It never holds a private key and refuses every request that
/// would change what it serves (add, remove, lock), as well as SHA-1 (`ssh-rsa`)
/// signatures.
#[derive(Debug)]
pub struct Agent {
    keys: Vec<Arc<AgentKey>>,
    options: AgentOptions,
}

impl Agent {
    /// An agent with no keys yet.
    #[must_use]
    pub fn new(options: AgentOptions) -> Self {
        Self {
            keys: Vec::new(),
            options,
        }
    }

    /// Adds a key, listed with `comment` (its URI when empty).
    ///
    /// # Errors
    /// [`AgentError::Key`] for a key already served or one SSH cannot use.
    pub fn add_key(
        &mut self,
        key: Arc<dyn KmsKey>,
        comment: impl Into<String>,
    ) -> Result<Arc<AgentKey>, AgentError> {
        let mut comment = comment.into();
        if comment.is_empty() {
            comment = key.uri().to_string();
        }
        let entry = Arc::new(AgentKey::new(key, comment)?);
        if let Some(same) = self.keys.iter().find(|k| k.blob == entry.blob) {
            return Err(AgentError::Key(format!(
                "{} is the same key as {}",
                entry.key.uri(),
                same.key.uri()
            )));
        }
        self.keys.push(entry.clone());
        Ok(entry)
    }

    /// Lists `certificate` with the key it certifies.
    ///
    /// # Errors
    /// [`AgentError::Certificate`] when no served key is the certificate's.
    pub fn add_certificate(&self, certificate: Certificate) -> Result<(), AgentError> {
        let subject = certificate.as_ssh_key().public_key();
        let Some(key) = self.keys.iter().find(|k| &k.public == subject) else {
            return Err(AgentError::Certificate(format!(
                "certificate `{}` certifies none of the agent's keys",
                certificate.as_ssh_key().key_id()
            )));
        };
        let mut certificates = key
            .certificates
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !certificates.contains(&certificate) {
            certificates.push(certificate);
        }
        Ok(())
    }

    /// The keys served.
    #[must_use]
    pub fn keys(&self) -> &[Arc<AgentKey>] {
        &self.keys
    }

    /// Its options.
    #[must_use]
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// The identities answer: each key's unexpired certificates, then the key itself.
    #[must_use]
    pub fn identities(&self) -> Vec<IdentityEntry> {
        let now = kmssh_pki::unix_now();
        let mut entries = Vec::new();
        for key in &self.keys {
            for certificate in key.certificates() {
                if certificate.as_ssh_key().valid_before() <= now {
                    continue;
                }
                entries.push(IdentityEntry {
                    blob: certificate.as_bytes().to_vec(),
                    comment: key.comment.clone(),
                });
            }
            entries.push(IdentityEntry {
                blob: key.blob.clone(),
                comment: key.comment.clone(),
            });
        }
        entries
    }

    /// Answers one request. Failures are answered `FAILURE` and logged with their cause;
    /// the agent goes on serving.
    pub async fn handle(&self, request: &Request) -> Response {
        match request {
            Request::RequestIdentities => Response::Identities(self.identities()),
            Request::Sign {
                key_blob,
                data,
                flags,
            } => match self.sign(key_blob, data, *flags).await {
                Ok(signature) => Response::Signature(signature),
                Err(e) => {
                    tracing::warn!("sign request refused: {e}");
                    Response::Failure
                }
            },
            Request::Extension(name) => {
                tracing::info!("extension `{name}` is not supported: FAILURE");
                Response::Failure
            }
            Request::Other(kind) => {
                tracing::warn!(
                    "{} ({kind}) refused: this agent serves only its configured KMS keys",
                    message_name(*kind)
                );
                Response::Failure
            }
        }
    }

    /// Signs `data` for a sign request, returning the SSH signature blob.
    ///
    /// # Errors
    /// [`AgentError`] naming why: an unknown key, an algorithm the key does not sign
    /// (SHA-1 RSA always), a refusal by the confirm command, the deadline, or the
    /// backend's failure.
    pub async fn sign(
        &self,
        key_blob: &[u8],
        data: &[u8],
        flags: u32,
    ) -> Result<Vec<u8>, AgentError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.matches(key_blob))
            .ok_or_else(|| AgentError::UnknownKey)?;
        let algorithm = signature_algorithm(key.key.as_ref(), flags)?;
        if let Some(confirm) = &self.options.confirm {
            confirm
                .approve(key, algorithm, self.options.sign_timeout)
                .await?;
        }
        let signed = tokio::time::timeout(
            self.options.sign_timeout,
            key.key.sign(algorithm, SigningInput::Message(data)),
        )
        .await
        .map_err(|_| AgentError::Timeout {
            uri: key.key.uri().to_string(),
            after: self.options.sign_timeout,
        })?
        .map_err(|source| AgentError::Signing {
            uri: key.key.uri().to_string(),
            source,
        })?;
        let signature = kmssh_pki::ssh_signature(&signed)
            .map_err(|e| e.to_string())
            .and_then(|s| s.encode_vec().map_err(|e| e.to_string()))
            .map_err(|e| AgentError::Key(format!("{}: {e}", key.key.uri())))?;
        tracing::info!(
            "signed {} bytes with {} ({algorithm})",
            data.len(),
            key.key.uri()
        );
        Ok(signature)
    }
}

/// The algorithm a sign request asks of `key`: the curve's ECDSA, Ed25519, or for RSA the
/// SHA-2 variant the flags name (SHA-256 first when both are set, as OpenSSH's agent).
fn signature_algorithm(key: &dyn KmsKey, flags: u32) -> Result<Algorithm, AgentError> {
    let public = key.public_key();
    let algorithm = match public.family() {
        KeyFamily::Rsa if flags & SSH_AGENT_RSA_SHA2_256 != 0 => Algorithm::RsaPkcs1Sha256,
        KeyFamily::Rsa if flags & SSH_AGENT_RSA_SHA2_512 != 0 => Algorithm::RsaPkcs1Sha512,
        KeyFamily::Rsa => {
            return Err(AgentError::Refused(
                "ssh-rsa (SHA-1) signatures are refused: the client must offer rsa-sha2-256 or rsa-sha2-512".into(),
            ));
        }
        KeyFamily::Ecdsa | KeyFamily::Ed25519 => public.algorithms()[0],
    };
    kmssh_core::check_algorithm(key, algorithm).map_err(|source| AgentError::Signing {
        uri: key.uri().to_string(),
        source,
    })?;
    Ok(algorithm)
}
