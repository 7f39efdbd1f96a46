//! Client certificates: the TLS layer verified the chain; here the leaf is matched to a caller.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use super::{AuthConfigError, AuthError, CallerConfig, base_attributes, identity};
use crate::{AuthMethod, Identity};

/// Which client certificate a caller presents; every field given must match exactly.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsMatch {
    /// The subject distinguished name, RFC 4514 (`"CN=alice,O=Example"`, most specific first).
    #[serde(default)]
    pub subject: Option<String>,
    /// A subject alternative name: an email address, DNS name or URI the certificate carries.
    #[serde(default)]
    pub san: Option<String>,
}

struct MtlsCaller {
    caller: String,
    policy: String,
    /// Canonical RFC 4514 form, as [`Name`]'s `Display` writes it.
    subject: Option<String>,
    san: Option<String>,
}

/// The callers that authenticate with a client certificate, in configuration order, and
/// the identities already worked out for leaf certificates seen before.
#[derive(Default)]
pub(super) struct MtlsCallers(Vec<MtlsCaller>, IdentityCache);

/// Identities by the SHA-256 of the leaf certificate: a client presents the same leaf on
/// every request of a connection, and parsing it and printing its subject cost more than
/// the rest of authentication. Sound because the TLS layer verifies the chain (validity
/// included) on every handshake, and the mapping from a certificate to a caller depends
/// only on the certificate and the configuration.
#[derive(Default)]
struct IdentityCache(std::sync::Mutex<std::collections::HashMap<[u8; 32], Identity>>);

/// Distinct leaf certificates remembered; the cache starts over when full.
const CACHED_LEAVES: usize = 4096;

/// What a leaf certificate says about its holder.
struct Presented {
    subject: String,
    common_name: Option<String>,
    emails: Vec<String>,
    dns_names: Vec<String>,
    uris: Vec<String>,
}

impl MtlsCallers {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn add(
        &mut self,
        caller: &CallerConfig,
        matcher: &MtlsMatch,
    ) -> Result<(), AuthConfigError> {
        if matcher.subject.is_none() && matcher.san.is_none() {
            return Err(AuthConfigError::caller(
                &caller.name,
                "mtls needs a subject and/or a san to match",
            ));
        }
        // Parsed and printed back so that spellings of one name (`cn=` / `CN=`) compare equal.
        let subject = match &matcher.subject {
            Some(subject) => Some(
                Name::from_str(subject)
                    .map_err(|error| {
                        AuthConfigError::caller(
                            &caller.name,
                            format!("mtls subject `{subject}` is not an RFC 4514 name: {error}"),
                        )
                    })?
                    .to_string(),
            ),
            None => None,
        };
        if matcher.san.as_deref().is_some_and(str::is_empty) {
            return Err(AuthConfigError::caller(&caller.name, "mtls san is empty"));
        }
        self.0.push(MtlsCaller {
            caller: caller.name.clone(),
            policy: caller.policy.clone(),
            subject,
            san: matcher.san.clone(),
        });
        Ok(())
    }

    pub(super) fn authenticate(&self, leaf: &[u8]) -> Result<Identity, AuthError> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(leaf).into();
        let cache = &self.1.0;
        if let Some(identity) = cache.lock().ok().and_then(|c| c.get(&digest).cloned()) {
            return Ok(identity);
        }
        let identity = self.identify(leaf)?;
        if let Ok(mut cache) = cache.lock() {
            if cache.len() >= CACHED_LEAVES {
                cache.clear();
            }
            cache.insert(digest, identity.clone());
        }
        Ok(identity)
    }

    fn identify(&self, leaf: &[u8]) -> Result<Identity, AuthError> {
        let presented = Presented::parse(leaf)?;
        let known = self
            .0
            .iter()
            .find(|known| presented.matches(known))
            .ok_or_else(|| AuthError::NoCertificateCaller {
                subject: presented.describe(),
            })?;
        Ok(identity(
            &known.caller,
            &known.policy,
            AuthMethod::Mtls,
            presented.attributes(&known.caller),
        ))
    }
}

impl Presented {
    fn parse(der: &[u8]) -> Result<Self, AuthError> {
        let certificate = Certificate::from_der(der)
            .map_err(|error| AuthError::BadCertificate(error.to_string()))?;
        let tbs = certificate.tbs_certificate();
        let subject = tbs.subject();
        let common_name = subject
            .common_name()
            .map_err(|error| AuthError::BadCertificate(format!("subject CN: {error}")))?
            .map(String::from);
        let mut presented = Self {
            subject: subject.to_string(),
            common_name,
            emails: Vec::new(),
            dns_names: Vec::new(),
            uris: Vec::new(),
        };
        let san = tbs
            .get_extension::<SubjectAltName>()
            .map_err(|error| AuthError::BadCertificate(format!("subjectAltName: {error}")))?;
        for name in san.map(|(_critical, san)| san.0).unwrap_or_default() {
            match name {
                GeneralName::Rfc822Name(email) => presented.emails.push(email.to_string()),
                GeneralName::DnsName(dns) => presented.dns_names.push(dns.to_string()),
                GeneralName::UniformResourceIdentifier(uri) => {
                    presented.uris.push(uri.to_string());
                }
                _ => {}
            }
        }
        Ok(presented)
    }

    fn matches(&self, known: &MtlsCaller) -> bool {
        let subject = known
            .subject
            .as_ref()
            .is_none_or(|subject| *subject == self.subject);
        let san = known.san.as_ref().is_none_or(|san| {
            self.emails
                .iter()
                .chain(&self.dns_names)
                .chain(&self.uris)
                .any(|name| name == san)
        });
        subject && san
    }

    /// For refusals: the subject, and the first alternative name when the subject is empty.
    fn describe(&self) -> String {
        let first_san = self
            .emails
            .iter()
            .chain(&self.dns_names)
            .chain(&self.uris)
            .next();
        match (self.subject.is_empty(), first_san) {
            (true, Some(san)) => format!("SAN {san}"),
            _ => self.subject.clone(),
        }
    }

    fn attributes(&self, caller: &str) -> BTreeMap<String, String> {
        let mut attributes = base_attributes(caller);
        attributes.insert("subject".to_owned(), self.subject.clone());
        let optional = [
            ("cn", self.common_name.as_ref()),
            ("san.email", self.emails.first()),
            ("san.dns", self.dns_names.first()),
            ("san.uri", self.uris.first()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                attributes.insert(name.to_owned(), value.clone());
            }
        }
        attributes
    }
}
