//! Short-lived certificates for the agent's own keys, issued by a kmssh CA key and renewed
//! before they expire.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kmssh_core::KmsKey;
use kmssh_pki::{Certificate, CertificateParameters};

use crate::AgentError;
use crate::agent::{Agent, AgentKey};

/// After a failed issuance, try again this soon (or sooner, if the certificate in hand
/// expires first).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Issues certificates for the agent's keys with a CA key.
#[derive(Debug, Clone)]
pub struct Renewal {
    ca: Arc<dyn KmsKey>,
    params: CertificateParameters,
    validity: Duration,
}

impl Renewal {
    /// Certificates signed by `ca` with `params` (principals, extensions; the key id is
    /// the key's comment when `params` has none), valid for `validity` from issuance.
    ///
    /// # Errors
    /// [`AgentError::Certificate`] for a validity under 60 s (it would be renewed
    /// constantly) or parameters that do not resolve.
    pub fn new(
        ca: Arc<dyn KmsKey>,
        mut params: CertificateParameters,
        validity: Duration,
    ) -> Result<Self, AgentError> {
        if validity < Duration::from_secs(60) {
            return Err(AgentError::Certificate(format!(
                "certificate validity {validity:?} is under the 60 s minimum"
            )));
        }
        params
            .valid_for(validity)
            .and_then(|p| p.resolve(kmssh_pki::unix_now()).map(|_| ()))
            .map_err(|e| AgentError::Certificate(e.to_string()))?;
        Ok(Self {
            ca,
            params,
            validity,
        })
    }

    /// Issues a certificate for `key` now and lists it (in place of the ones before).
    ///
    /// # Errors
    /// [`AgentError::Certificate`] when the CA does not sign; the old certificates stay.
    pub async fn renew(&self, key: &AgentKey) -> Result<Certificate, AgentError> {
        let mut params = self.params.clone();
        if params
            .resolve(kmssh_pki::unix_now())
            .is_ok_and(|p| p.key_id.is_empty())
        {
            params
                .key_id(key.comment())
                .map_err(|e| AgentError::Certificate(e.to_string()))?;
        }
        let certificate = kmssh_pki::issue(self.ca.as_ref(), key.public_key(), &params)
            .await
            .map_err(|e| {
                AgentError::Certificate(format!(
                    "{} could not certify {}: {e}",
                    self.ca.uri(),
                    key.key().uri()
                ))
            })?;
        key.set_certificates(vec![certificate.clone()])?;
        tracing::info!(
            "certificate serial {} for {} valid until {}",
            certificate.as_ssh_key().serial(),
            key.key().uri(),
            certificate.as_ssh_key().valid_before()
        );
        Ok(certificate)
    }

    /// Issues every key's first certificate.
    ///
    /// # Errors
    /// The first key that could not be certified.
    pub async fn issue_all(&self, agent: &Agent) -> Result<(), AgentError> {
        for key in agent.keys() {
            self.renew(key).await?;
        }
        Ok(())
    }

    /// When a certificate should be replaced: once two thirds of its life have passed.
    #[must_use]
    pub fn renew_at(certificate: &Certificate) -> u64 {
        let cert = certificate.as_ssh_key();
        let (after, before) = (cert.valid_after(), cert.valid_before());
        after.saturating_add(before.saturating_sub(after) / 3 * 2)
    }

    /// Keeps every key's certificate fresh until `shutdown`: renews each at two thirds of
    /// its life, retries failures every 30 s (the old certificate serves meanwhile, and is
    /// dropped from the list once expired).
    pub async fn run(&self, agent: Arc<Agent>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut retry: Vec<Option<u64>> = vec![None; agent.keys().len()];
        loop {
            let now = kmssh_pki::unix_now();
            let mut next = now + self.validity.as_secs();
            for (key, retry_at) in agent.keys().iter().zip(retry.iter_mut()) {
                let due = key
                    .certificates()
                    .iter()
                    .map(Self::renew_at)
                    .max()
                    .unwrap_or(now);
                let due = retry_at.unwrap_or(due);
                if due <= now {
                    match self.renew(key).await {
                        Ok(certificate) => {
                            *retry_at = None;
                            next = next.min(Self::renew_at(&certificate));
                        }
                        Err(e) => {
                            tracing::warn!("{e}; retrying in {RETRY_AFTER_FAILURE:?}");
                            let at = now + RETRY_AFTER_FAILURE.as_secs();
                            *retry_at = Some(at);
                            next = next.min(at);
                        }
                    }
                } else {
                    next = next.min(due);
                }
            }
            let wait = Duration::from_secs(next.saturating_sub(kmssh_pki::unix_now()).max(1));
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
