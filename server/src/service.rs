//! The `ssh_cert.Signer` service: authenticate, route to a granted key, apply the
//! caller's policy, sign, record, answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use kmssh_core::{ErrorKind, KmsKey};
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::ssh_key::HashAlg;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{CertificateParameters, ssh_public_key, unix_now};
use prost::Message as _;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::config::KeyRoute;
use crate::identity::Identity;
use crate::ledger::{IssuedRecord, Ledger, RefusalRecord};
use crate::limits::CallerRateLimiter;
use crate::policy::Policy;
use crate::wire::proto::signer_server::Signer;
use crate::wire::{
    CloudCertificateSigningResponse, CloudProvider, GetCertificateAuthorityRequest,
    GetCertificateAuthorityResponse, SignCertificateRequest,
};

/// A CA key the service signs with.
pub struct CaKey {
    /// The key.
    pub key: Arc<dyn KmsKey>,
    /// Its SSH public key.
    pub public_key: KeyData,
    /// `SHA256:…` of the public key: what ledger serials are unique under.
    pub fingerprint: String,
    /// How requests name it.
    pub route: KeyRoute,
    /// Spaces its signatures when the key has a `max_rate`.
    pub pacer: Option<kmssh_pki::batch::Pacer>,
}

impl CaKey {
    /// Wraps an opened key under its configured name and route.
    #[must_use]
    pub fn new(route: KeyRoute, key: Arc<dyn KmsKey>) -> Self {
        let public_key = ssh_public_key(key.public_key());
        let fingerprint = public_key.fingerprint(HashAlg::Sha256).to_string();
        // A zero rate is refused when the configuration is read.
        let pacer = route
            .max_rate
            .and_then(|rate| kmssh_pki::batch::Pacer::new(rate).ok());
        Self {
            key,
            public_key,
            fingerprint,
            route,
            pacer,
        }
    }

    /// The configured name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.route.name
    }
}

/// Everything a request needs, shared by all connections.
pub struct SignerService {
    pub(crate) keys: Vec<CaKey>,
    pub(crate) authenticator: Authenticator,
    pub(crate) policies: BTreeMap<String, Policy>,
    pub(crate) ledger: Ledger,
    pub(crate) audit: Option<AuditLog>,
    pub(crate) rate: CallerRateLimiter,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_request_bytes: usize,
}

/// A refusal on its way to the caller: the status, and the rule for the records.
pub(crate) struct Refused {
    pub(crate) status: Status,
    pub(crate) rule: &'static str,
    pub(crate) caller: String,
    pub(crate) ca_key: Option<String>,
}

impl Refused {
    fn new(status: Status, rule: &'static str) -> Self {
        Self {
            status,
            rule,
            caller: String::new(),
            ca_key: None,
        }
    }
}

/// Where the request came from, for the records.
pub(crate) struct Origin {
    pub(crate) request_id: String,
    pub(crate) peer: Option<String>,
}

pub(crate) fn origin<T>(request: &Request<T>) -> Origin {
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    Origin {
        request_id,
        peer: request.remote_addr().map(|a| a.to_string()),
    }
}

impl SignerService {
    pub(crate) async fn identify<T>(&self, request: &Request<T>) -> Result<Identity, Refused> {
        let chain = request.peer_certs();
        let leaf = chain.as_deref().and_then(|c| c.first()).map(AsRef::as_ref);
        let identity = self
            .authenticator
            .authenticate_leaf(request.metadata(), leaf)
            .await
            .map_err(|e| Refused::new(Status::unauthenticated(e.to_string()), "authentication"))?;
        if !self.rate.check(&identity.caller) {
            return Err(Refused {
                status: Status::resource_exhausted(format!(
                    "rate limit: caller `{}` is over {} requests/s",
                    identity.caller,
                    self.rate.per_second()
                )),
                rule: "rate_limit",
                caller: identity.caller,
                ca_key: None,
            });
        }
        Ok(identity)
    }

    /// The key a request names, if the caller's policy grants it. An unknown key and a key
    /// not granted get the same answer: the caller learns nothing about other keys.
    fn route(
        &self,
        identity: &Identity,
        provider: i32,
        key_id: &str,
    ) -> Result<(&CaKey, &Policy), Refused> {
        let provider = CloudProvider::try_from(provider).ok();
        let found = self.keys.iter().find(|k| {
            k.name() == key_id
                || (k.route.ids.iter().any(|id| id == key_id)
                    && (k.route.provider.is_none() || k.route.provider == provider))
        });
        self.grant(identity, found, || {
            format!(
                "key `{key_id}` ({})",
                provider.map_or("unknown provider", |p| p.as_str_name())
            )
        })
    }

    /// `found` with the caller's policy, if that policy grants it. An unknown key and a
    /// key not granted get the same answer (`named` says how the request named it): the
    /// caller learns nothing about other keys.
    pub(crate) fn grant<'a>(
        &'a self,
        identity: &Identity,
        found: Option<&'a CaKey>,
        named: impl FnOnce() -> String,
    ) -> Result<(&'a CaKey, &'a Policy), Refused> {
        match (found, self.policies.get(&identity.policy)) {
            (Some(key), Some(policy)) if policy.allows_key(key.name()) => Ok((key, policy)),
            _ => Err(Refused {
                status: Status::permission_denied(format!(
                    "{} is not granted to caller `{}`",
                    named(),
                    identity.caller
                )),
                rule: "keys",
                caller: identity.caller.clone(),
                ca_key: None,
            }),
        }
    }

    /// Runs one request's work under the in-flight limit: its answer, or its refusal
    /// recorded and turned into the caller's status.
    pub(crate) async fn answer<R>(
        &self,
        origin: &Origin,
        work: impl Future<Output = Result<R, Refused>>,
    ) -> Result<Response<R>, Status> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        match work.await {
            Ok(response) => Ok(Response::new(response)),
            Err(refused) => Err(self.refuse(origin, refused).await),
        }
    }

    pub(crate) async fn refuse(&self, origin: &Origin, refused: Refused) -> Status {
        let record = RefusalRecord {
            caller: refused.caller,
            rule: refused.rule.to_owned(),
            message: refused.status.message().to_owned(),
            request_id: origin.request_id.clone(),
            ca_key: refused.ca_key,
            at: unix_now(),
            peer: origin.peer.clone(),
        };
        tracing::info!(request_id = %record.request_id, caller = %record.caller, rule = %record.rule, peer = ?record.peer, "refused: {}", record.message);
        if let Some(Err(e)) = self.audit.as_ref().map(|audit| audit.refused(&record)) {
            tracing::error!("audit log: {e}");
        }
        if let Err(e) = self.ledger.record_refusal(record).await {
            tracing::error!("ledger: cannot record a refusal: {e}");
        }
        refused.status
    }

    async fn sign(
        &self,
        origin: &Origin,
        request: Request<SignCertificateRequest>,
    ) -> Result<CloudCertificateSigningResponse, Refused> {
        let identity = self.identify(&request).await?;
        let message = request.into_inner();
        if let Some(error) = message.wire_error {
            return Err(malformed(&identity, error));
        }
        let (ca, policy) = self.route(&identity, message.provider, &message.kms_key_id)?;
        let refuse = |status: Status, rule: &'static str| Refused {
            status,
            rule,
            caller: identity.caller.clone(),
            ca_key: Some(ca.name().to_owned()),
        };
        let request_bytes = message.encoded_len();
        if request_bytes > self.max_request_bytes {
            return Err(refuse(
                Status::invalid_argument(format!(
                    "the request is {request_bytes} bytes, over the {}-byte limit",
                    self.max_request_bytes
                )),
                "request_size",
            ));
        }
        let csr = CertificateSigningRequest::from_proto(&message.signing_request_payload).map_err(
            |e| {
                refuse(
                    Status::invalid_argument(format!("signingRequestPayload: {e}")),
                    "request",
                )
            },
        )?;
        let now = unix_now();
        let decision = policy
            .evaluate(&identity, ca.name(), &csr, now)
            .map_err(|r| refuse(Status::permission_denied(r.to_string()), r.rule))?;
        let mut params: CertificateParameters = decision.parameters;
        let serial = match decision.serial_requested {
            Some(serial) => {
                self.ledger
                    .claim_serial(&ca.fingerprint, serial)
                    .await
                    .map_err(|e| {
                        refuse(
                            Status::already_exists(format!("serial {serial}: {e}")),
                            "serial",
                        )
                    })?;
                serial
            }
            None => self
                .ledger
                .reserve_serial(&ca.fingerprint)
                .await
                .map_err(|e| refuse(Status::unavailable(format!("ledger: {e}")), "ledger"))?,
        };
        params
            .serial(serial)
            .map_err(|e| refuse(Status::internal(e.to_string()), "serial"))?;
        if let Some(pacer) = &ca.pacer {
            let wait = pacer.take(std::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let certificate = kmssh_pki::issue_at(ca.key.as_ref(), &csr.public_key, &params, now)
            .await
            .map_err(|e| refuse(signing_status(&e), "signing"))?;
        let fields = certificate.as_ssh_key();
        let record = IssuedRecord {
            serial,
            ca_key: ca.name().to_owned(),
            ca_fingerprint: ca.fingerprint.clone(),
            key_id: fields.key_id().to_owned(),
            principals: fields.valid_principals().to_vec(),
            cert_type: certificate.cert_type(),
            valid_after: fields.valid_after(),
            valid_before: fields.valid_before(),
            subject_fingerprint: csr.public_key.fingerprint(HashAlg::Sha256).to_string(),
            caller: identity.caller.clone(),
            request_id: origin.request_id.clone(),
            issued_at: now,
            certificate: certificate.cert_string(fields.key_id()),
        };
        // The certificate leaves only once the ledger holds it: a certificate nobody can
        // find is one nobody can revoke.
        self.ledger
            .record_issued(record.clone())
            .await
            .map_err(|e| refuse(Status::unavailable(format!("ledger: {e}")), "ledger"))?;
        if let Some(Err(e)) = self.audit.as_ref().map(|audit| audit.issued(&record)) {
            tracing::error!("audit log: {e}");
        }
        tracing::info!(request_id = %origin.request_id, caller = %identity.caller, key = %ca.name(), serial, clamped = decision.clamped, "issued");
        Ok(CloudCertificateSigningResponse {
            certificate_type: fields.algorithm().to_certificate_type().to_owned(),
            certificate: certificate.as_bytes().to_vec(),
        })
    }
}

/// A request whose bytes broke the message layout (the strict decoder's finding).
fn malformed(identity: &Identity, error: String) -> Refused {
    Refused {
        status: Status::invalid_argument(error),
        rule: "request",
        caller: identity.caller.clone(),
        ca_key: None,
    }
}

/// The gRPC status for a failure to issue: the caller's fault, the KMS's, or ours.
fn signing_status(error: &kmssh_pki::Error) -> Status {
    match error {
        kmssh_pki::Error::Signing(e) => {
            let message = format!("the CA key failed: {e}");
            match e.kind() {
                ErrorKind::Throttled | ErrorKind::Unavailable => Status::unavailable(message),
                ErrorKind::Timeout => Status::deadline_exceeded(message),
                _ => Status::internal(message),
            }
        }
        kmssh_pki::Error::InvalidField { .. } | kmssh_pki::Error::UnsupportedKey { .. } => {
            Status::invalid_argument(error.to_string())
        }
        _ => Status::internal(error.to_string()),
    }
}

#[tonic::async_trait]
impl Signer for Arc<SignerService> {
    async fn sign_certificate(
        &self,
        request: Request<SignCertificateRequest>,
    ) -> Result<Response<CloudCertificateSigningResponse>, Status> {
        let origin = origin(&request);
        self.answer(&origin, self.sign(&origin, request)).await
    }

    async fn get_certificate_authority(
        &self,
        request: Request<GetCertificateAuthorityRequest>,
    ) -> Result<Response<GetCertificateAuthorityResponse>, Status> {
        let origin = origin(&request);
        let found = async {
            let identity = self.identify(&request).await?;
            let message = request.get_ref();
            if let Some(error) = &message.wire_error {
                return Err(malformed(&identity, error.clone()));
            }
            let (ca, _) = self.route(&identity, message.provider, &message.kms_key_id)?;
            let mut blob = Vec::new();
            kmssh_pki::ssh_key::encoding::Encode::encode(&ca.public_key, &mut blob)
                .map_err(|e| Refused::new(Status::internal(e.to_string()), "encoding"))?;
            Ok::<_, Refused>(GetCertificateAuthorityResponse {
                key_type: ca.public_key.algorithm().as_str().to_owned(),
                public_key: blob,
            })
        };
        match found.await {
            Ok(response) => Ok(Response::new(response)),
            Err(refused) => Err(self.refuse(&origin, refused).await),
        }
    }
}
