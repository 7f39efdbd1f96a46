//! kmssh's Google Cloud KMS backend: signs with an asymmetric key **version** of
//! algorithm `EC_SIGN_P256_SHA256` or `EC_SIGN_P384_SHA384`.
//!
//! ```text
//! gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N
//! ```
//!
//! Built on Google's official `google-cloud-kms-v1` crate (JSON over REST), with
//! Application Default Credentials from `google-cloud-auth`. The community
//! `google-cloud-kms` crate speaks gRPC only to Google's own TLS endpoint and cannot be
//! pointed at a local emulator, so it could not be tested here; the official crate takes
//! an endpoint and anonymous credentials, which is how the conformance suite reaches its
//! emulator.
//!
//! Integrity, as Google asks of every client: the public key's PEM CRC32C is checked at
//! open; every `asymmetricSign` sends the digest's CRC32C and checks the answer
//! (`verifiedDigestCrc32c` true, `name` the requested version, `signatureCrc32c` over the
//! signature). A mismatch is retried once, then refused; a signature that passes is still
//! verified against the cached public key before it is returned.
//!
//! Linking this crate registers the `gcp-kms:` scheme (`use kmssh_backend_gcp as _;`).
//! Keys opened through the registry take their endpoint from `KMSSH_GCP_ENDPOINT` and,
//! for emulators, `KMSSH_GCP_ANONYMOUS=true` ([`GcpKmsOptions::from_env`]).

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_gax::error::rpc::Code;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::Digest;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm;
use kmssh_core::{
    Algorithm, Backend, EcPublicKey, EcdsaSignature, Error, ErrorKind, ErrorStatus, KeyUri, KmsKey,
    OpenFuture, RawSigner, Result, RetryPolicy, VerifiedSigner,
};

/// The key URI scheme this backend serves.
pub const SCHEME: &str = "gcp-kms";

/// The Cloud KMS algorithms this backend signs with.
pub const SUPPORTED_ALGORITHMS: [&str; 2] = ["EC_SIGN_P256_SHA256", "EC_SIGN_P384_SHA384"];

/// Default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to set explicitly; by default the client reaches Google with Application
/// Default Credentials.
#[derive(Clone, Debug, Default)]
pub struct GcpKmsOptions {
    /// An endpoint override (`https://…` or, for an emulator, `http://127.0.0.1:PORT`).
    pub endpoint: Option<String>,
    /// Use no credentials at all (emulators only).
    pub anonymous: bool,
    /// The longest one API call may take (default 10 s).
    pub call_timeout: Option<Duration>,
    /// Backoff and deadline for each operation (default: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
}

/// `KMSSH_GCP_ENDPOINT`: the endpoint for keys opened through the registry.
pub const ENDPOINT_ENV: &str = "KMSSH_GCP_ENDPOINT";
/// `KMSSH_GCP_ANONYMOUS=true`: no credentials, for keys opened through the registry
/// (emulators only).
pub const ANONYMOUS_ENV: &str = "KMSSH_GCP_ANONYMOUS";

impl GcpKmsOptions {
    /// The options for keys opened through the registry (`kmssh_core::open`, the CLI):
    /// [`ENDPOINT_ENV`] (a Private Service Connect endpoint, an emulator) and
    /// [`ANONYMOUS_ENV`]; everything else default.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when [`ANONYMOUS_ENV`] is not a yes/no value.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            endpoint: kmssh_core::env_setting(ENDPOINT_ENV),
            anonymous: kmssh_core::env_flag(ANONYMOUS_ENV)?.unwrap_or(false),
            ..Self::default()
        })
    }

    /// Builds a client: ADC (or anonymous), the endpoint override, and no retries of the
    /// SDK's own (kmssh's [`RetryPolicy`] is the one retry loop).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when credentials cannot be found or the client cannot start.
    pub async fn client(&self) -> Result<KeyManagementService> {
        let mut builder = KeyManagementService::builder()
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .with_attempt_timeout(self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if self.anonymous {
            builder = builder.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        builder.build().await.map_err(|e| {
            Error::new(
                ErrorKind::Config,
                "cannot create the Cloud KMS client (Application Default Credentials?)",
            )
            .with_source(e)
        })
    }
}

/// A Cloud KMS key version, opened and checked.
#[derive(Debug)]
pub struct GcpKmsKey {
    uri: KeyUri,
    client: KeyManagementService,
    name: String,
    public: EcPublicKey,
    retry: RetryPolicy,
}

/// CRC32C as Cloud KMS carries it: an int64.
fn crc32c(bytes: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(bytes))
}

/// `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`, every part non-empty.
fn version_name(uri: &KeyUri) -> Result<&str> {
    let name = uri.body();
    let parts: Vec<&str> = name.split('/').collect();
    let labels = [
        "projects",
        "locations",
        "keyRings",
        "cryptoKeys",
        "cryptoKeyVersions",
    ];
    let shaped = |n: usize| {
        parts.len() == 2 * n
            && parts.iter().all(|p| !p.is_empty())
            && (0..n).all(|i| parts[2 * i] == labels[i])
    };
    if shaped(5) {
        return Ok(name);
    }
    let why = if shaped(4) {
        "this names a crypto key, not a key version: asymmetric signing happens at the key version level, \
         so add /cryptoKeyVersions/N (see `gcloud kms keys versions list`)"
    } else {
        "expected gcp-kms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N"
    };
    Err(Error::new(ErrorKind::InvalidUri, why).with_context("uri", uri))
}

fn map_gcp_error(operation: &str, err: google_cloud_kms_v1::Error) -> Error {
    let (kind, status, detail) = match err.status() {
        Some(status) => {
            let (kind, retry) = match status.code {
                Code::NotFound => (ErrorKind::NotFound, ErrorStatus::Permanent),
                Code::PermissionDenied | Code::Unauthenticated => {
                    (ErrorKind::PermissionDenied, ErrorStatus::Permanent)
                }
                // A version still being generated or not enabled yet: worth waiting for.
                Code::FailedPrecondition => (ErrorKind::InvalidKey, ErrorStatus::Temporary),
                Code::ResourceExhausted => (ErrorKind::Throttled, ErrorStatus::Temporary),
                Code::Unavailable | Code::Internal | Code::Unknown | Code::Aborted => {
                    (ErrorKind::Unavailable, ErrorStatus::Temporary)
                }
                Code::DeadlineExceeded => (ErrorKind::Timeout, ErrorStatus::Temporary),
                Code::InvalidArgument | Code::OutOfRange => {
                    (ErrorKind::InvalidInput, ErrorStatus::Permanent)
                }
                _ => (ErrorKind::Unexpected, ErrorStatus::Permanent),
            };
            (
                kind,
                retry,
                format!("{:?}: {}", status.code, status.message),
            )
        }
        None if err.is_timeout() => (
            ErrorKind::Timeout,
            ErrorStatus::Temporary,
            "the call timed out".into(),
        ),
        None if err.is_authentication() => (
            ErrorKind::PermissionDenied,
            ErrorStatus::Permanent,
            "could not obtain credentials".into(),
        ),
        None if err.is_io()
            || err.is_connect()
            || err.is_transport()
            || err.is_deserialization() =>
        {
            (
                ErrorKind::Unavailable,
                ErrorStatus::Temporary,
                "could not reach Cloud KMS".into(),
            )
        }
        None => match err.http_status_code() {
            Some(429) => (
                ErrorKind::Throttled,
                ErrorStatus::Temporary,
                "HTTP 429".into(),
            ),
            Some(code) if code >= 500 => (
                ErrorKind::Unavailable,
                ErrorStatus::Temporary,
                format!("HTTP {code}"),
            ),
            _ => (
                ErrorKind::Unexpected,
                ErrorStatus::Permanent,
                "unexpected failure".into(),
            ),
        },
    };
    let mut error =
        Error::new(kind, format!("Cloud KMS {operation}: {detail}")).with_status(status);
    if let Some(code) = err.http_status_code() {
        error = error.with_context("http_status", code);
    }
    error.with_source(err)
}

fn integrity_error(message: String) -> Error {
    Error::new(ErrorKind::BadSignature, message)
}

impl GcpKmsKey {
    /// Opens a key version with a client built from `options`.
    ///
    /// # Errors
    /// As [`GcpKmsKey::open_with_client`], or [`ErrorKind::Config`] without credentials.
    pub async fn open(uri: &KeyUri, options: &GcpKmsOptions) -> Result<VerifiedSigner<Self>> {
        let name = version_name(uri)?;
        let client = options
            .client()
            .await
            .map_err(|e| e.with_context("uri", uri))?;
        Self::open_with_client(uri, name, client, options).await
    }

    /// Opens a key version: one `getPublicKey`, its algorithm and PEM CRC32C checked.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] for a name that is not a key version;
    /// [`ErrorKind::UnsupportedAlgorithm`] naming any algorithm but the two EC ones;
    /// [`ErrorKind::BadSignature`] for a PEM whose CRC32C does not match; provider
    /// failures after retries.
    pub async fn open_with_client(
        uri: &KeyUri,
        name: &str,
        client: KeyManagementService,
        options: &GcpKmsOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let retry = options.retry.unwrap_or_default();
        let at_uri = |e: Error| e.with_context("uri", uri);
        let public_key = retry
            .run("getPublicKey", || async {
                client
                    .get_public_key()
                    .set_name(name)
                    .send()
                    .await
                    .map_err(|e| map_gcp_error("getPublicKey", e))
            })
            .await
            .map_err(at_uri)?;
        let algorithm = match &public_key.algorithm {
            CryptoKeyVersionAlgorithm::EcSignP256Sha256 => Algorithm::EcdsaP256Sha256,
            CryptoKeyVersionAlgorithm::EcSignP384Sha384 => Algorithm::EcdsaP384Sha384,
            other => {
                return Err(at_uri(Error::new(
                    ErrorKind::UnsupportedAlgorithm,
                    format!(
                        "key version algorithm {} is not supported: kmssh signs with {}",
                        other.name().unwrap_or("UNKNOWN"),
                        SUPPORTED_ALGORITHMS.join(", ")
                    ),
                )));
            }
        };
        if let Some(expected) = public_key.pem_crc32c
            && expected != crc32c(public_key.pem.as_bytes())
        {
            return Err(at_uri(integrity_error(
                "the public key's PEM does not match its pemCrc32c: corrupted in transit".into(),
            )));
        }
        let public = EcPublicKey::from_public_key_pem(&public_key.pem).map_err(at_uri)?;
        if public.algorithm() != algorithm {
            return Err(at_uri(Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "the PEM holds a {} key but the version says {algorithm}",
                    public.algorithm()
                ),
            )));
        }
        Ok(VerifiedSigner::new(Self {
            uri: uri.clone(),
            client,
            name: name.to_owned(),
            public,
            retry,
        }))
    }

    /// The key version's resource name.
    #[must_use]
    pub fn version_name(&self) -> &str {
        &self.name
    }

    /// One `asymmetricSign` (with transport retries) and the integrity checks on its answer.
    async fn sign_checked(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let digest_field = match self.public.algorithm() {
            Algorithm::EcdsaP256Sha256 => Digest::new().set_sha256(digest.to_vec()),
            _ => Digest::new().set_sha384(digest.to_vec()),
        };
        let response = self
            .retry
            .run("asymmetricSign", || async {
                self.client
                    .asymmetric_sign()
                    .set_name(&self.name)
                    .set_digest(digest_field.clone())
                    .set_digest_crc32c(crc32c(digest))
                    .send()
                    .await
                    .map_err(|e| map_gcp_error("asymmetricSign", e))
            })
            .await?;
        if !response.verified_digest_crc32c {
            return Err(integrity_error(
                "Cloud KMS did not confirm the digest's CRC32C (verifiedDigestCrc32c false): the request was altered".into(),
            ));
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

    fn public_key(&self) -> &EcPublicKey {
        &self.public
    }

    async fn sign_digest_unverified(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        // An integrity failure is retried once, as Google's guidance says; twice is refused.
        let der = match self.sign_checked(digest).await {
            Err(e) if e.kind() == ErrorKind::BadSignature => self.sign_checked(digest).await?,
            other => other?,
        };
        EcdsaSignature::from_der(self.public.algorithm(), &der)
    }
}

fn open_registered(uri: KeyUri) -> OpenFuture {
    Box::pin(async move {
        let key: Arc<dyn KmsKey> =
            Arc::new(GcpKmsKey::open(&uri, &GcpKmsOptions::from_env()?).await?);
        Ok(key)
    })
}

inventory::submit! {
    Backend {
        scheme: SCHEME,
        description: "Google Cloud KMS: gcp-kms:projects/…/cryptoKeyVersions/N, EC_SIGN_P256_SHA256 / EC_SIGN_P384_SHA384",
        open: open_registered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_version_names_are_accepted() {
        let ok = KeyUri::parse(
            "gcp-kms:projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
        )
        .expect("uri");
        assert!(version_name(&ok).is_ok());
        let key_only = KeyUri::parse("gcp-kms:projects/p/locations/global/keyRings/r/cryptoKeys/k")
            .expect("uri");
        let err = version_name(&key_only).expect_err("no version");
        assert!(err.message().contains("key version level"), "{err}");
        for bad in [
            "gcp-kms:projects/p",
            "gcp-kms:projects//locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        ] {
            assert_eq!(
                version_name(&KeyUri::parse(bad).expect("uri"))
                    .err()
                    .map(|e| e.kind()),
                Some(ErrorKind::InvalidUri)
            );
        }
    }

    #[test]
    fn crc32c_matches_the_castagnoli_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
