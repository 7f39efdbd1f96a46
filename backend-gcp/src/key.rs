//! [`GcpKmsKey`]: a Cloud KMS key version opened and checked (`getPublicKey`), signing
//! digests with `asymmetricSign` and checking the CRC32C integrity fields of every answer.

use async_trait::async_trait;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::Digest;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm;
use kmssh_core::{
    Algorithm, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, RawSigner, Result,
    RetryPolicy, VerifiedSigner,
};

use crate::GcpKmsOptions;
use crate::error::map_sdk_error;

/// The Cloud KMS algorithms this backend signs with.
pub const SUPPORTED_ALGORITHMS: [&str; 2] = ["EC_SIGN_P256_SHA256", "EC_SIGN_P384_SHA384"];

/// A Cloud KMS key version, opened and checked; [`GcpKmsKey::open`] returns it inside
/// [`VerifiedSigner`], which checks every signature before handing it out.
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

/// An answer that failed an integrity check: retried once by the signer, then refused.
fn integrity_error(message: String) -> Error {
    Error::new(ErrorKind::BadSignature, message)
}

impl GcpKmsKey {
    /// Opens a key version with a client built from `options` (see
    /// [`GcpKmsOptions::client`]).
    ///
    /// # Errors
    /// As [`GcpKmsKey::open_with_client`], or [`ErrorKind::Config`] without credentials.
    pub async fn open(uri: &KeyUri, options: &GcpKmsOptions) -> Result<VerifiedSigner<Self>> {
        // A URI that names no key version is refused before any client is built.
        version_name(uri)?;
        let client = options
            .client()
            .await
            .map_err(|e| e.with_context("uri", uri))?;
        Self::open_with_client(uri, client, options).await
    }

    /// Opens a key version with a client the caller built: one `getPublicKey`, its
    /// algorithm and PEM CRC32C checked. `options` gives the retry policy; its client
    /// settings are not used.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] for a name that is not a key version;
    /// [`ErrorKind::UnsupportedAlgorithm`] naming any algorithm but the two EC ones;
    /// [`ErrorKind::BadSignature`] for a PEM whose CRC32C does not match; provider
    /// failures after retries.
    pub async fn open_with_client(
        uri: &KeyUri,
        client: KeyManagementService,
        options: &GcpKmsOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let name = version_name(uri)?;
        let retry = options.retry.unwrap_or_default();
        let at_uri = |e: Error| e.with_context("uri", uri);
        let public_key = retry
            .run("getPublicKey", || async {
                client
                    .get_public_key()
                    .set_name(name)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("getPublicKey", e))
            })
            .await
            .map_err(at_uri)?;
        // A `_` arm is right here: the algorithm is the provider's open enum.
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
        // Open admits P-256 and P-384 only; each algorithm's digest has its own field.
        let digest_field = match self.public.algorithm() {
            Algorithm::EcdsaP256Sha256 => Digest::new().set_sha256(digest.to_vec()),
            Algorithm::EcdsaP384Sha384 => Digest::new().set_sha384(digest.to_vec()),
            Algorithm::EcdsaP521Sha512 => Digest::new().set_sha512(digest.to_vec()),
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
                    .map_err(|e| map_sdk_error("asymmetricSign", e))
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
