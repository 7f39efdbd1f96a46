//! The `kmssh.revocation.v1.Revocation` service: certificates revoked through the ledger,
//! and the KRL made from it.

use std::collections::BTreeSet;
use std::sync::Arc;

use kmssh_pki::krl::Krl;
use kmssh_pki::unix_now;
use tonic::{Request, Response, Status};

use crate::identity::Identity;
use crate::ledger::{LedgerFilter, Revocation as RevocationRecord};
use crate::policy::Policy;
use crate::service::{CaKey, Origin, Refused, SignerService, origin};
use crate::wire::revocation::revocation_server::Revocation;
use crate::wire::{GetKrlRequest, GetKrlResponse, RevokeRequest, RevokeResponse};

impl SignerService {
    /// The configured key named `name`, if the caller's policy grants it (an unknown key
    /// and one not granted get the same answer, as for signing).
    fn granted_key(&self, identity: &Identity, name: &str) -> Result<(&CaKey, &Policy), Refused> {
        let found = self.keys.iter().find(|k| k.name() == name);
        self.grant(identity, found, || format!("key `{name}`"))
    }

    async fn revoke(
        &self,
        origin: &Origin,
        request: Request<RevokeRequest>,
    ) -> Result<RevokeResponse, Refused> {
        let identity = self.identify(&request).await?;
        let message = request.into_inner();
        let (ca, policy) = self.granted_key(&identity, &message.key)?;
        let refuse = |status: Status, rule: &'static str| Refused {
            status,
            rule,
            caller: identity.caller.clone(),
            ca_key: Some(ca.name().to_owned()),
        };
        if !policy.allows_revoking() {
            return Err(refuse(
                Status::permission_denied(format!(
                    "policy rule `revoke`: policy `{}` does not let caller `{}` revoke",
                    policy.name(),
                    identity.caller
                )),
                "revoke",
            ));
        }
        if message.serials.is_empty() && message.key_id.is_empty() && message.principal.is_empty() {
            return Err(refuse(
                Status::invalid_argument("name serials, a key id or a principal to revoke"),
                "request",
            ));
        }
        if message.serials.contains(&0) {
            return Err(refuse(
                Status::failed_precondition(
                    "serial 0 cannot be revoked by serial (OpenSSH KRLs skip it): revoke by key id",
                ),
                "request",
            ));
        }
        let ledger_error = |e: crate::ledger::LedgerError| {
            refuse(Status::unavailable(format!("ledger: {e}")), "ledger")
        };
        let mut selected: BTreeSet<u64> = message.serials.iter().copied().collect();
        for (key_id, principal) in [
            (Some(&message.key_id), None),
            (None, Some(&message.principal)),
        ] {
            let (key_id, principal) = (
                key_id.filter(|k| !k.is_empty()).cloned(),
                principal.filter(|p| !p.is_empty()).cloned(),
            );
            if key_id.is_none() && principal.is_none() {
                continue;
            }
            let filter = LedgerFilter {
                ca_fingerprint: Some(ca.fingerprint.clone()),
                key_id,
                principal,
                ..LedgerFilter::default()
            };
            let found = self.ledger.list(&filter).await.map_err(ledger_error)?;
            selected.extend(found.iter().map(|r| r.serial).filter(|s| *s != 0));
        }
        if selected.is_empty() {
            return Err(refuse(
                Status::not_found(format!(
                    "no certificate of key `{}` in the ledger matches",
                    ca.name()
                )),
                "request",
            ));
        }
        let revocation = RevocationRecord {
            ca_fingerprint: ca.fingerprint.clone(),
            serials: selected.into_iter().collect(),
            caller: identity.caller.clone(),
            reason: message.reason.clone(),
            request_id: origin.request_id.clone(),
            at: unix_now(),
        };
        let outcome = self
            .ledger
            .revoke(&revocation)
            .await
            .map_err(ledger_error)?;
        if !outcome.unknown.is_empty() {
            return Err(refuse(
                Status::not_found(format!(
                    "serials {:?} are not certificates of key `{}` in the ledger: nothing was revoked",
                    outcome.unknown,
                    ca.name()
                )),
                "request",
            ));
        }
        let krl_version = self
            .ledger
            .revoked_serials(&ca.fingerprint)
            .await
            .map_err(ledger_error)?
            .len() as u64;
        if let Some(Err(e)) = self
            .audit
            .as_ref()
            .map(|audit| audit.revoked(&revocation, &outcome.revoked, ca.name()))
        {
            tracing::error!("audit log: {e}");
        }
        tracing::info!(request_id = %origin.request_id, caller = %identity.caller, key = %ca.name(), revoked = ?outcome.revoked, krl_version, "revoked");
        Ok(RevokeResponse {
            revoked: outcome.revoked,
            already_revoked: outcome.already,
            krl_version,
        })
    }

    async fn krl(&self, request: Request<GetKrlRequest>) -> Result<GetKrlResponse, Refused> {
        let identity = self.identify(&request).await?;
        let (ca, _) = self.granted_key(&identity, &request.get_ref().key)?;
        let refuse = |status: Status, rule: &'static str| Refused {
            status,
            rule,
            caller: identity.caller.clone(),
            ca_key: Some(ca.name().to_owned()),
        };
        let serials = self
            .ledger
            .revoked_serials(&ca.fingerprint)
            .await
            .map_err(|e| refuse(Status::unavailable(format!("ledger: {e}")), "ledger"))?;
        let krl = build_krl(ca, &serials, unix_now())
            .map_err(|e| refuse(Status::internal(format!("KRL: {e}")), "krl"))?;
        Ok(GetKrlResponse {
            krl: krl.to_bytes(),
            krl_version: krl.version,
        })
    }
}

/// The KRL revoking `serials` of `ca` (the KRL merges consecutive serials into ranges
/// and picks list, range or bitmap by size, as `ssh-keygen` does).
///
/// # Errors
/// A serial the KRL format cannot hold (0).
pub fn build_krl(ca: &CaKey, serials: &[u64], now: u64) -> Result<Krl, kmssh_pki::Error> {
    let mut krl = Krl::new();
    krl.version = serials.len() as u64;
    krl.generated_date = now;
    krl.comment = format!("kmssh ledger: revocations of {}", ca.name());
    for &serial in serials {
        krl.revoke_serials(Some(&ca.public_key), serial, serial)?;
    }
    Ok(krl)
}

#[tonic::async_trait]
impl Revocation for Arc<SignerService> {
    async fn revoke(
        &self,
        request: Request<RevokeRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let origin = origin(&request);
        self.answer(&origin, SignerService::revoke(self, &origin, request))
            .await
    }

    async fn get_krl(
        &self,
        request: Request<GetKrlRequest>,
    ) -> Result<Response<GetKrlResponse>, Status> {
        let origin = origin(&request);
        self.answer(&origin, self.krl(request)).await
    }
}
