//! [`GcpKmsKey`]: a Cloud KMS key version opened and checked (`getPublicKey`), signing
//! with `asymmetricSign` (a digest, or `data` for raw PKCS#1 and Ed25519 versions) and
//! checking the CRC32C integrity fields of every answer.

use async_trait::async_trait;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::Digest;
use google_cloud_kms_v1::model::crypto_key_version::{
    CryptoKeyVersionAlgorithm, CryptoKeyVersionState,
};
use kmssh_core::{
    Algorithm, Curve, Error, ErrorKind, HashAlgorithm, KeySpec, KeyUri, PublicKey, RawSigner,
    Result, RetryPolicy, Signature, SigningPayload, VerifiedSigner,
};

use crate::error::map_sdk_error;
use crate::{GcpKmsOptions, Protection};

/// The Cloud KMS key version algorithms this backend signs with.
pub const SUPPORTED_ALGORITHMS: [&str; 10] = [
    "EC_SIGN_P256_SHA256",
    "EC_SIGN_P384_SHA384",
    "RSA_SIGN_PKCS1_2048_SHA256",
    "RSA_SIGN_PKCS1_3072_SHA256",
    "RSA_SIGN_PKCS1_4096_SHA256",
    "RSA_SIGN_PKCS1_4096_SHA512",
    "RSA_SIGN_RAW_PKCS1_2048",
    "RSA_SIGN_RAW_PKCS1_3072",
    "RSA_SIGN_RAW_PKCS1_4096",
    "EC_SIGN_ED25519",
];

/// What an `asymmetricSign` request carries for a version's algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    /// `digest`: the digest of the version's one hash (ECDSA, `RSA_SIGN_PKCS1_*_SHA*`).
    Digest,
    /// `data`: a DER `DigestInfo` (RFC 8017 §9.2) naming the hash and holding the digest,
    /// which the version pads and signs as is (`RSA_SIGN_RAW_PKCS1_*`): any hash works.
    DigestInfo,
    /// `data`: the message itself (`EC_SIGN_ED25519`, pure Ed25519).
    Message,
}

/// The field of one `asymmetricSign` request, with what it carries.
enum Field {
    /// `digest` (its CRC32C is over the digest's bytes).
    Digest(Digest),
    /// `data`.
    Data(Vec<u8>),
}

/// A key version algorithm kmssh signs with: the key it must hold, what it signs, and how
/// the request carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VersionAlgorithm {
    name: &'static str,
    spec: KeySpec,
    algorithms: &'static [Algorithm],
    input: Input,
}

impl VersionAlgorithm {
    const fn new(
        name: &'static str,
        spec: KeySpec,
        algorithms: &'static [Algorithm],
        input: Input,
    ) -> Self {
        Self {
            name,
            spec,
            algorithms,
            input,
        }
    }
}

/// Why kmssh does not sign with a Cloud KMS algorithm, for the refusal.
fn refusal_reason(name: &str) -> &'static str {
    if name.starts_with("RSA_SIGN_PSS_") {
        "RSASSA-PSS signatures, which OpenSSH (rsa-sha2-256/512 are PKCS#1 v1.5) cannot verify: \
         create an RSA_SIGN_PKCS1_* or RSA_SIGN_RAW_PKCS1_* version instead"
    } else if name == "EC_SIGN_SECP256K1_SHA256" {
        "ECDSA on secp256k1, a curve OpenSSH does not support"
    } else if name.starts_with("HMAC_") {
        "a MAC key (HMAC), not a signing key pair: it has no public key to put in a CA line"
    } else if name.starts_with("PQ_SIGN_") {
        "post-quantum signatures (ML-DSA, SLH-DSA), which OpenSSH does not verify"
    } else if name.starts_with("RSA_DECRYPT_")
        || name.starts_with("KEM_")
        || name.starts_with("ML_KEM_")
        || name.starts_with("AES_")
        || name.contains("SYMMETRIC_ENCRYPTION")
    {
        "an encryption or decryption key, not a signing key"
    } else {
        "not a signing algorithm kmssh knows"
    }
}

/// The version algorithm for Cloud KMS's, or the refusal naming it.
fn version_algorithm(algorithm: &CryptoKeyVersionAlgorithm) -> Result<VersionAlgorithm> {
    use Algorithm::{EcdsaP256Sha256, EcdsaP384Sha384, Ed25519, RsaPkcs1Sha256, RsaPkcs1Sha512};
    use CryptoKeyVersionAlgorithm as A;
    const SHA256: &[Algorithm] = &[RsaPkcs1Sha256];
    const SHA512: &[Algorithm] = &[RsaPkcs1Sha512];
    let (name, spec, algorithms, input) = match algorithm {
        A::EcSignP256Sha256 => (
            "EC_SIGN_P256_SHA256",
            KeySpec::Ecdsa(Curve::P256),
            &[EcdsaP256Sha256][..],
            Input::Digest,
        ),
        A::EcSignP384Sha384 => (
            "EC_SIGN_P384_SHA384",
            KeySpec::Ecdsa(Curve::P384),
            &[EcdsaP384Sha384][..],
            Input::Digest,
        ),
        A::RsaSignPkcs12048Sha256 => (
            "RSA_SIGN_PKCS1_2048_SHA256",
            KeySpec::Rsa(2048),
            SHA256,
            Input::Digest,
        ),
        A::RsaSignPkcs13072Sha256 => (
            "RSA_SIGN_PKCS1_3072_SHA256",
            KeySpec::Rsa(3072),
            SHA256,
            Input::Digest,
        ),
        A::RsaSignPkcs14096Sha256 => (
            "RSA_SIGN_PKCS1_4096_SHA256",
            KeySpec::Rsa(4096),
            SHA256,
            Input::Digest,
        ),
        A::RsaSignPkcs14096Sha512 => (
            "RSA_SIGN_PKCS1_4096_SHA512",
            KeySpec::Rsa(4096),
            SHA512,
            Input::Digest,
        ),
        A::RsaSignRawPkcs12048 => (
            "RSA_SIGN_RAW_PKCS1_2048",
            KeySpec::Rsa(2048),
            &Algorithm::RSA[..],
            Input::DigestInfo,
        ),
        A::RsaSignRawPkcs13072 => (
            "RSA_SIGN_RAW_PKCS1_3072",
            KeySpec::Rsa(3072),
            &Algorithm::RSA[..],
            Input::DigestInfo,
        ),
        A::RsaSignRawPkcs14096 => (
            "RSA_SIGN_RAW_PKCS1_4096",
            KeySpec::Rsa(4096),
            &Algorithm::RSA[..],
            Input::DigestInfo,
        ),
        A::EcSignEd25519 => (
            "EC_SIGN_ED25519",
            KeySpec::Ed25519,
            &[Ed25519][..],
            Input::Message,
        ),
        // A `_` arm is right here: the algorithm is the provider's open enum.
        other => {
            let name = other
                .name()
                .map_or_else(|| format!("{:?}", other.value()), str::to_owned);
            return Err(Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!(
                    "key version algorithm {name} is not supported: it is {}. kmssh signs with {}",
                    refusal_reason(&name),
                    SUPPORTED_ALGORITHMS.join(", ")
                ),
            )
            .with_context("algorithm", name));
        }
    };
    Ok(VersionAlgorithm::new(name, spec, algorithms, input))
}

/// The DER `DigestInfo` prefix of each hash (RFC 8017 §9.2, note 1): `SEQUENCE {
/// AlgorithmIdentifier { OID, NULL }, OCTET STRING (digest) }` up to the digest.
fn digest_info_prefix(hash: HashAlgorithm) -> &'static [u8] {
    match hash {
        HashAlgorithm::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlgorithm::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlgorithm::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// The `DigestInfo` a raw PKCS#1 version signs for `digest` of `hash`.
fn digest_info(hash: HashAlgorithm, digest: &[u8]) -> Vec<u8> {
    let prefix = digest_info_prefix(hash);
    let mut info = Vec::with_capacity(prefix.len() + digest.len());
    info.extend_from_slice(prefix);
    info.extend_from_slice(digest);
    info
}

/// At most this many pages of 1,000 versions are listed for `version=latest`.
const MAX_LIST_PAGES: usize = 100;

/// A Cloud KMS key version, opened and checked; [`GcpKmsKey::open`] returns it inside
/// [`VerifiedSigner`], which checks every signature before handing it out.
#[derive(Debug)]
pub struct GcpKmsKey {
    uri: KeyUri,
    client: KeyManagementService,
    name: String,
    public: PublicKey,
    algorithm: VersionAlgorithm,
    protection: Option<Protection>,
    retry: RetryPolicy,
    credentials: Option<String>,
}

/// CRC32C as Cloud KMS carries it: an int64.
fn crc32c(bytes: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(bytes))
}

/// What a key URI (and the options) ask for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// A key version's name, or with `latest` a crypto key's.
    name: String,
    /// Resolve `name` (a crypto key) to its newest `ENABLED` version.
    latest: bool,
    /// Refuse a version of any other protection level.
    protection: Option<Protection>,
}

const LABELS: [&str; 5] = [
    "projects",
    "locations",
    "keyRings",
    "cryptoKeys",
    "cryptoKeyVersions",
];

/// `name` is `LABEL/value` for the first `n` labels, every part non-empty.
fn shaped(name: &str, n: usize) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 2 * n
        && parts.iter().all(|p| !p.is_empty())
        && (0..n).all(|i| parts[2 * i] == LABELS[i])
}

const FORMS: &str = "expected gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N, \
    or gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K?version=latest, \
    optionally with protection=software|hsm|external|external-vpc";

/// Reads `gcp-kms:NAME[?version=latest][&protection=LEVEL]` (the registry leaves the
/// query in the body for this scheme) against `options`.
fn target(uri: &KeyUri, options: &GcpKmsOptions) -> Result<Target> {
    let invalid = |why: String| Error::new(ErrorKind::InvalidUri, why).with_context("uri", uri);
    let (name, query) = uri.body().split_once('?').unwrap_or((uri.body(), ""));
    let mut latest = false;
    let mut protection = None;
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if seen.contains(&key) {
            return Err(invalid(format!("`{key}` is given twice")));
        }
        seen.push(key);
        match key {
            "version" if value == "latest" => latest = true,
            "version" => {
                return Err(invalid(format!(
                    "version={value}: the only value is `latest` (a version number goes in \
                     the name: …/cryptoKeyVersions/N)"
                )));
            }
            "protection" => {
                protection = Some(Protection::parse(value).ok_or_else(|| {
                    invalid(format!(
                        "protection={value}: expected software, hsm, external or external-vpc"
                    ))
                })?);
            }
            _ => {
                return Err(invalid(format!(
                    "unknown parameter `{key}`: gcp-kms URIs take version=latest and \
                     protection=software|hsm|external|external-vpc"
                )));
            }
        }
    }
    let protection = match (protection, options.required_protection) {
        (Some(asked), Some(required)) if asked != required => {
            return Err(invalid(format!(
                "protection={} contradicts the required protection {} in GcpKmsOptions",
                asked.uri_value(),
                required.uri_value()
            )));
        }
        (asked, required) => asked.or(required),
    };
    if shaped(name, 5) {
        if latest {
            return Err(invalid(
                "this names a key version and asks for version=latest: give one or the other"
                    .into(),
            ));
        }
        return Ok(Target {
            name: name.to_owned(),
            latest: false,
            protection,
        });
    }
    if shaped(name, 4) {
        if latest || options.resolve_latest_version {
            return Ok(Target {
                name: name.to_owned(),
                latest: true,
                protection,
            });
        }
        return Err(invalid(
            "this names a crypto key, not a key version: asymmetric signing happens at the key \
             version level, so add /cryptoKeyVersions/N (see `gcloud kms keys versions list`), \
             or opt in to the key's newest ENABLED version with ?version=latest"
                .into(),
        ));
    }
    Err(invalid(FORMS.into()))
}

/// Says which credentials were used on an authentication or permission error.
fn with_credentials(error: Error, credentials: Option<&str>) -> Error {
    match credentials {
        Some(source)
            if matches!(
                error.kind(),
                ErrorKind::Unauthenticated | ErrorKind::PermissionDenied
            ) =>
        {
            error.with_context("credentials", source)
        }
        _ => error,
    }
}

/// The newest `ENABLED` version of crypto key `key` (the highest version number), by
/// listing its versions.
async fn newest_enabled_version(
    client: &KeyManagementService,
    key: &str,
    retry: &RetryPolicy,
) -> Result<String> {
    let mut newest: Option<(u64, String)> = None;
    let mut other_states: Vec<String> = Vec::new();
    let mut listed = 0usize;
    let mut page_token = String::new();
    for page_number in 1..=MAX_LIST_PAGES {
        let token = page_token.clone();
        let page = retry
            .run("listCryptoKeyVersions", || async {
                client
                    .list_crypto_key_versions()
                    .set_parent(key)
                    .set_page_size(1000)
                    .set_page_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("listCryptoKeyVersions", e))
            })
            .await?;
        for version in page.crypto_key_versions {
            let number = version
                .name
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix("/cryptoKeyVersions/"))
                .and_then(|n| n.parse::<u64>().ok());
            let Some(number) = number else { continue };
            listed += 1;
            if version.state == CryptoKeyVersionState::Enabled {
                if newest.as_ref().is_none_or(|(best, _)| number > *best) {
                    newest = Some((number, version.name));
                }
            } else {
                let state = version.state.name().unwrap_or("UNKNOWN").to_owned();
                if !other_states.contains(&state) {
                    other_states.push(state);
                }
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if page_number == MAX_LIST_PAGES {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("Cloud KMS listCryptoKeyVersions: more than {MAX_LIST_PAGES} pages"),
            ));
        }
        page_token = page.next_page_token;
    }
    newest.map(|(_, name)| name).ok_or_else(|| {
        let states = if other_states.is_empty() {
            String::new()
        } else {
            format!(": {}", other_states.join(", "))
        };
        Error::new(
            ErrorKind::InvalidKey,
            format!("version=latest: the key has no ENABLED version ({listed} listed{states})"),
        )
    })
}

/// An answer that failed an integrity check: retried once by the signer, then refused.
fn integrity_error(message: String) -> Error {
    Error::new(ErrorKind::BadSignature, message)
}

impl GcpKmsKey {
    /// Opens a key version with a client built from `options` (see
    /// [`GcpKmsOptions::client`]).
    ///
    /// # Errors
    /// As [`GcpKmsKey::open_with_client`]; [`ErrorKind::Unauthenticated`] without
    /// credentials (naming the sources tried).
    pub async fn open(uri: &KeyUri, options: &GcpKmsOptions) -> Result<VerifiedSigner<Self>> {
        // A URI that names no key version (and does not opt in) is refused before any
        // client is built.
        target(uri, options)?;
        let connection = options
            .connect()
            .await
            .map_err(|e| e.with_context("uri", uri))?;
        Self::open_connected(uri, connection.client, connection.credentials, options).await
    }

    /// Opens a key version with a client the caller built: with `version=latest`, one
    /// `cryptoKeyVersions.list` (paged); then one `getPublicKey`, its algorithm, PEM
    /// CRC32C and (if required) protection level checked. `options` gives the retry
    /// policy and the opt-ins; its client settings are not used.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] for a name that is not a key version (without
    /// `version=latest`) or a malformed parameter; [`ErrorKind::UnsupportedAlgorithm`]
    /// naming any algorithm but the [`SUPPORTED_ALGORITHMS`] (RSA-PSS, secp256k1, HMAC,
    /// post-quantum, decryption keys…); [`ErrorKind::InvalidKey`] for a PEM whose key is
    /// not the one the algorithm names (another curve, family or RSA size), a version of
    /// another protection level than required, or a key without an `ENABLED` version;
    /// [`ErrorKind::BadSignature`] for a PEM whose CRC32C does not match; provider
    /// failures after retries.
    pub async fn open_with_client(
        uri: &KeyUri,
        client: KeyManagementService,
        options: &GcpKmsOptions,
    ) -> Result<VerifiedSigner<Self>> {
        Self::open_connected(uri, client, None, options).await
    }

    async fn open_connected(
        uri: &KeyUri,
        client: KeyManagementService,
        credentials: Option<String>,
        options: &GcpKmsOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let target = target(uri, options)?;
        let retry = options.retry.unwrap_or_default();
        let at_uri =
            |e: Error| with_credentials(e, credentials.as_deref()).with_context("uri", uri);
        let name = if target.latest {
            newest_enabled_version(&client, &target.name, &retry)
                .await
                .map_err(at_uri)?
        } else {
            target.name
        };
        let at_uri = |e: Error| {
            let e = with_credentials(e, credentials.as_deref()).with_context("uri", uri);
            if target.latest {
                e.with_context("version", &name)
            } else {
                e
            }
        };
        let public_key = retry
            .run("getPublicKey", || async {
                client
                    .get_public_key()
                    .set_name(&name)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("getPublicKey", e))
            })
            .await
            .map_err(at_uri)?;
        let algorithm = version_algorithm(&public_key.algorithm).map_err(at_uri)?;
        if let Some(expected) = public_key.pem_crc32c
            && expected != crc32c(public_key.pem.as_bytes())
        {
            return Err(at_uri(integrity_error(
                "the public key's PEM does not match its pemCrc32c: corrupted in transit".into(),
            )));
        }
        let protection = Protection::ALL
            .into_iter()
            .find(|p| p.admits(&public_key.protection_level));
        if let Some(required) = target.protection
            && !required.admits(&public_key.protection_level)
        {
            return Err(at_uri(Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "the key version's protection level is {}, but protection={} requires {required}",
                    public_key.protection_level.name().unwrap_or("UNSPECIFIED"),
                    required.uri_value(),
                ),
            )));
        }
        let public = PublicKey::from_public_key_pem(&public_key.pem).map_err(at_uri)?;
        if public.spec() != algorithm.spec {
            return Err(at_uri(Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "the PEM holds a {} key, but a {} version holds {} keys",
                    public.description(),
                    algorithm.name,
                    algorithm.spec
                ),
            )));
        }
        Ok(VerifiedSigner::new(Self {
            uri: uri.clone(),
            client,
            name,
            public,
            algorithm,
            protection,
            retry,
            credentials,
        }))
    }

    /// The key version's resource name (with `version=latest`, the version it resolved to).
    #[must_use]
    pub fn version_name(&self) -> &str {
        &self.name
    }

    /// The version's protection level, as `getPublicKey` reported it (`None` for a level
    /// this crate does not know).
    #[must_use]
    pub fn protection(&self) -> Option<Protection> {
        self.protection
    }

    /// The key version algorithm's name (`RSA_SIGN_RAW_PKCS1_3072`…), as `getPublicKey`
    /// reported it.
    #[must_use]
    pub fn version_algorithm(&self) -> &'static str {
        self.algorithm.name
    }

    /// One `asymmetricSign` (with transport retries) and the integrity checks on its answer.
    async fn sign_checked(&self, payload: &SigningPayload<'_>) -> Result<Vec<u8>> {
        let bytes = payload.as_bytes();
        // `digest` for versions bound to one hash; `data` for raw PKCS#1 (a DigestInfo)
        // and Ed25519 (the message), which Cloud KMS signs as given. Each with its CRC32C.
        let field = match (self.algorithm.input, payload.algorithm().hash()) {
            (Input::Digest, Some(hash)) => Field::Digest(match hash {
                HashAlgorithm::Sha256 => Digest::new().set_sha256(bytes.to_vec()),
                HashAlgorithm::Sha384 => Digest::new().set_sha384(bytes.to_vec()),
                HashAlgorithm::Sha512 => Digest::new().set_sha512(bytes.to_vec()),
            }),
            (Input::DigestInfo, Some(hash)) => Field::Data(digest_info(hash, bytes)),
            (Input::Message, None) => Field::Data(bytes.to_vec()),
            (_, _) => {
                // VerifiedSigner admits only this version's algorithms, so this is a bug.
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "a {} payload for a {} version",
                        payload.algorithm(),
                        self.algorithm.name
                    ),
                ));
            }
        };
        let response = self
            .retry
            .run("asymmetricSign", || async {
                let request = self.client.asymmetric_sign().set_name(&self.name);
                let request = match &field {
                    Field::Digest(digest) => request
                        .set_digest(digest.clone())
                        .set_digest_crc32c(crc32c(bytes)),
                    Field::Data(data) => {
                        request.set_data(data.clone()).set_data_crc32c(crc32c(data))
                    }
                };
                request
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("asymmetricSign", e))
            })
            .await
            .map_err(|e| with_credentials(e, self.credentials.as_deref()))?;
        let (verified, name, flag) = match field {
            Field::Digest(_) => (
                response.verified_digest_crc32c,
                "digest",
                "verifiedDigestCrc32c",
            ),
            Field::Data(_) => (response.verified_data_crc32c, "data", "verifiedDataCrc32c"),
        };
        if !verified {
            return Err(integrity_error(format!(
                "Cloud KMS did not confirm the {name}'s CRC32C ({flag} false): the request was altered"
            )));
        }
        if response.name != self.name {
            return Err(integrity_error(format!(
                "Cloud KMS answered for {} instead of {}",
                response.name, self.name
            )));
        }
        if response.signature_crc32c != Some(crc32c(&response.signature)) {
            return Err(integrity_error(
                "the signature does not match its signatureCrc32c: corrupted in transit".into(),
            ));
        }
        Ok(response.signature.to_vec())
    }
}

#[async_trait]
impl RawSigner for GcpKmsKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn algorithms(&self) -> &[Algorithm] {
        self.algorithm.algorithms
    }

    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> Result<Signature> {
        // An integrity failure is retried once, as Google's guidance says; twice is refused.
        let bytes = match self.sign_checked(payload).await {
            Err(e) if e.kind() == ErrorKind::BadSignature => self.sign_checked(payload).await?,
            other => other?,
        };
        Signature::from_bytes(payload.algorithm(), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "projects/p/locations/global/keyRings/r/cryptoKeys/k";

    fn parsed(uri: &str, options: &GcpKmsOptions) -> Result<Target> {
        target(&KeyUri::parse(uri).expect("uri"), options)
    }

    #[test]
    fn key_version_names_are_accepted_and_key_names_only_with_the_opt_in() {
        let plain = GcpKmsOptions::default();
        let version = format!("{KEY}/cryptoKeyVersions/3");
        assert_eq!(
            parsed(&format!("gcp-kms:{version}"), &plain).expect("a version"),
            Target {
                name: version.clone(),
                latest: false,
                protection: None
            }
        );
        let err = parsed(&format!("gcp-kms:{KEY}"), &plain).expect_err("no version");
        assert_eq!(err.kind(), ErrorKind::InvalidUri);
        assert!(err.message().contains("key version level"), "{err}");
        assert!(err.message().contains("?version=latest"), "{err}");

        let latest = Target {
            name: KEY.to_owned(),
            latest: true,
            protection: None,
        };
        assert_eq!(
            parsed(&format!("gcp-kms:{KEY}?version=latest"), &plain).expect("opt-in"),
            latest
        );
        let opted_in = GcpKmsOptions {
            resolve_latest_version: true,
            ..GcpKmsOptions::default()
        };
        assert_eq!(
            parsed(&format!("gcp-kms:{KEY}"), &opted_in).expect("opt-in"),
            latest
        );
        // The options' opt-in leaves a named version alone.
        assert!(
            !parsed(&format!("gcp-kms:{version}"), &opted_in)
                .expect("a version")
                .latest
        );

        for bad in [
            "gcp-kms:projects/p".to_owned(),
            "gcp-kms:projects//locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1".to_owned(),
            format!("gcp-kms:{version}?version=latest"),
            format!("gcp-kms:{KEY}?version=3"),
            format!("gcp-kms:{KEY}?version=latest&version=latest"),
            format!("gcp-kms:{KEY}?verison=latest"),
            format!("gcp-kms:{version}?protection=hardware"),
        ] {
            assert_eq!(
                parsed(&bad, &plain).err().map(|e| e.kind()),
                Some(ErrorKind::InvalidUri),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_protection_level_comes_from_the_uri_or_the_options_and_they_must_agree() {
        let version = format!("gcp-kms:{KEY}/cryptoKeyVersions/1");
        let plain = GcpKmsOptions::default();
        assert_eq!(
            parsed(&format!("{version}?protection=hsm"), &plain)
                .expect("hsm")
                .protection,
            Some(Protection::Hsm)
        );
        let hsm = GcpKmsOptions {
            required_protection: Some(Protection::Hsm),
            ..GcpKmsOptions::default()
        };
        assert_eq!(
            parsed(&version, &hsm).expect("hsm").protection,
            Some(Protection::Hsm)
        );
        assert_eq!(
            parsed(&format!("{version}?protection=HSM"), &hsm)
                .expect("the same")
                .protection,
            Some(Protection::Hsm)
        );
        let err = parsed(&format!("{version}?protection=software"), &hsm).expect_err("conflict");
        assert!(err.message().contains("contradicts"), "{err}");
        let both = parsed(
            &format!("gcp-kms:{KEY}?protection=external-vpc&version=latest"),
            &plain,
        )
        .expect("both parameters");
        assert!(both.latest);
        assert_eq!(both.protection, Some(Protection::ExternalVpc));
    }

    #[test]
    fn each_supported_algorithm_maps_to_its_key_and_algorithms() {
        use CryptoKeyVersionAlgorithm as A;
        let supported = [
            A::EcSignP256Sha256,
            A::EcSignP384Sha384,
            A::RsaSignPkcs12048Sha256,
            A::RsaSignPkcs13072Sha256,
            A::RsaSignPkcs14096Sha256,
            A::RsaSignPkcs14096Sha512,
            A::RsaSignRawPkcs12048,
            A::RsaSignRawPkcs13072,
            A::RsaSignRawPkcs14096,
            A::EcSignEd25519,
        ];
        for (wire, name) in supported.iter().zip(SUPPORTED_ALGORITHMS) {
            let mapped = version_algorithm(wire).expect(name);
            assert_eq!(mapped.name, name);
            assert_eq!(wire.name(), Some(name));
            // Every algorithm the version signs is one its key can sign.
            for algorithm in mapped.algorithms {
                assert!(mapped.spec.algorithms().contains(algorithm), "{name}");
            }
        }
        let sha256_only = version_algorithm(&A::RsaSignPkcs13072Sha256).expect("supported");
        assert_eq!(sha256_only.algorithms, [Algorithm::RsaPkcs1Sha256]);
        assert_eq!(sha256_only.input, Input::Digest);
        let sha512 = version_algorithm(&A::RsaSignPkcs14096Sha512).expect("supported");
        assert_eq!(sha512.algorithms, [Algorithm::RsaPkcs1Sha512]);
        let raw = version_algorithm(&A::RsaSignRawPkcs12048).expect("supported");
        assert_eq!(raw.algorithms, Algorithm::RSA);
        assert_eq!(raw.input, Input::DigestInfo);
        let ed25519 = version_algorithm(&A::EcSignEd25519).expect("supported");
        assert_eq!(
            (ed25519.spec, ed25519.input),
            (KeySpec::Ed25519, Input::Message)
        );
    }

    #[test]
    fn other_algorithms_are_refused_by_name_with_the_reason() {
        use CryptoKeyVersionAlgorithm as A;
        for (wire, reason) in [
            (A::RsaSignPss2048Sha256, "RSASSA-PSS"),
            (A::RsaSignPss4096Sha512, "RSASSA-PSS"),
            (A::EcSignSecp256K1Sha256, "secp256k1"),
            (A::HmacSha256, "HMAC"),
            (A::PqSignMlDsa65, "post-quantum"),
            (A::PqSignSlhDsaSha2128S, "post-quantum"),
            (A::RsaDecryptOaep2048Sha256, "decryption"),
            (A::GoogleSymmetricEncryption, "encryption"),
            (A::KemXwing, "decryption"),
        ] {
            let name = wire.name().expect("a known name");
            let err = version_algorithm(&wire).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
            assert!(err.message().contains(name), "{err}");
            assert!(err.message().contains(reason), "{name}: {err}");
            assert!(err.message().contains("RSA_SIGN_RAW_PKCS1_4096"), "{err}");
        }
        let unknown = CryptoKeyVersionAlgorithm::from(999);
        let err = version_algorithm(&unknown).expect_err("unknown");
        assert!(err.message().contains("999"), "{err}");
    }

    #[test]
    fn digest_info_prefixes_are_rfc_8017s() {
        use kmssh_core::rsa::Pkcs1v15Sign;
        use kmssh_core::rsa::sha2::{Sha256, Sha384, Sha512};
        for (hash, theirs) in [
            (HashAlgorithm::Sha256, Pkcs1v15Sign::new::<Sha256>()),
            (HashAlgorithm::Sha384, Pkcs1v15Sign::new::<Sha384>()),
            (HashAlgorithm::Sha512, Pkcs1v15Sign::new::<Sha512>()),
        ] {
            assert_eq!(digest_info_prefix(hash), &*theirs.prefix, "{hash}");
            let digest = hash.digest(b"abc");
            let info = digest_info(hash, &digest);
            assert_eq!(info.len(), theirs.prefix.len() + hash.len());
            assert!(info.ends_with(&digest));
        }
    }

    #[test]
    fn crc32c_matches_the_castagnoli_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
