//! [`AzureKeyVaultKey`]: a Key Vault key opened and checked (`get key`), its version
//! pinned, signing digests with `sign`; and the key URL parser.

use async_trait::async_trait;
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    CurveName, KeyClientGetKeyOptions, KeyClientSignOptions, KeyOperation, KeyType, SignParameters,
    SignatureAlgorithm,
};
use kmssh_core::{
    Algorithm, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, RawSigner, Result,
    RetryPolicy, VerifiedSigner,
};

use crate::AzureKeyVaultOptions;
use crate::error::map_sdk_error;

/// The parts of a key URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLocation {
    /// `https://vault.vault.azure.net` (scheme, host, port).
    pub vault: String,
    /// The key name.
    pub name: String,
    /// The version, if the URL pins one.
    pub version: Option<String>,
}

/// A key name or version: 1 to 127 ASCII letters, digits and dashes.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parses `https://HOST[:PORT]/keys/NAME[/VERSION]`.
///
/// # Errors
/// [`ErrorKind::InvalidUri`] for another scheme (plain http included) or path.
pub fn parse_key_url(uri: &KeyUri) -> Result<KeyLocation> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidUri,
            format!("{why}: expected azure-kv:https://VAULT.vault.azure.net/keys/NAME[/VERSION]"),
        )
        .with_context("uri", uri)
    };
    let url = uri.body();
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("the key URL must be https"))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| bad("no key path"))?;
    if host.is_empty() || host.contains(['@', '?', '#']) {
        return Err(bad("bad vault host"));
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["keys", name] if is_name(name) => Ok(KeyLocation {
            vault: format!("https://{host}"),
            name: (*name).to_owned(),
            version: None,
        }),
        ["keys", name, version] if is_name(name) && is_name(version) => Ok(KeyLocation {
            vault: format!("https://{host}"),
            name: (*name).to_owned(),
            version: Some((*version).to_owned()),
        }),
        _ => Err(bad("bad key path")),
    }
}

/// An Azure Key Vault key version, opened and checked; [`AzureKeyVaultKey::open`] returns
/// it inside [`VerifiedSigner`], which checks every signature before handing it out.
pub struct AzureKeyVaultKey {
    uri: KeyUri,
    client: KeyClient,
    name: String,
    version: String,
    algorithm: SignatureAlgorithm,
    public: EcPublicKey,
    retry: RetryPolicy,
}

/// A JWK coordinate, left-padded with zeros to the curve's field size.
fn coordinate(field: Option<&Vec<u8>>, len: usize, which: &str) -> Result<Vec<u8>> {
    let bytes = field
        .ok_or_else(|| Error::new(ErrorKind::InvalidKey, format!("the JWK has no `{which}`")))?;
    if bytes.len() > len {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "JWK `{which}` is {} bytes, more than the curve's {len}",
                bytes.len()
            ),
        ));
    }
    let mut padded = vec![0u8; len - bytes.len()];
    padded.extend_from_slice(bytes);
    Ok(padded)
}

impl std::fmt::Debug for AzureKeyVaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVaultKey")
            .field("uri", &self.uri)
            .field("version", &self.version)
            .field("algorithm", &self.public.algorithm())
            .finish_non_exhaustive()
    }
}

impl AzureKeyVaultKey {
    /// Opens a key with a client built from `options` (see
    /// [`AzureKeyVaultOptions::client`]).
    ///
    /// # Errors
    /// As [`AzureKeyVaultKey::open_with_client`], plus the configuration errors of
    /// [`AzureKeyVaultOptions::client`].
    pub async fn open(
        uri: &KeyUri,
        options: &AzureKeyVaultOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let client = options.client(uri)?;
        Self::open_with_client(uri, client, options).await
    }

    /// Opens a key with a client the caller built: one `get key`, its JWK and attributes
    /// checked, the version pinned. `options` gives the retry policy; its client settings
    /// are not used.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUri`] as [`parse_key_url`];
    /// [`ErrorKind::UnsupportedAlgorithm`] for RSA, oct and P-256K keys;
    /// [`ErrorKind::InvalidKey`] for keys without the `sign` operation, disabled, expired
    /// or not yet valid; provider failures mapped to kinds after retries.
    pub async fn open_with_client(
        uri: &KeyUri,
        client: KeyClient,
        options: &AzureKeyVaultOptions,
    ) -> Result<VerifiedSigner<Self>> {
        let location = parse_key_url(uri)?;
        let retry = options.retry.unwrap_or_default();
        let at_uri = |e: Error| e.with_context("uri", uri);
        let key = retry
            .run("get key", || async {
                let options = KeyClientGetKeyOptions {
                    key_version: location.version.clone(),
                    ..KeyClientGetKeyOptions::default()
                };
                let response = client
                    .get_key(&location.name, Some(options))
                    .await
                    .map_err(|e| map_sdk_error("get", e))?;
                response.into_model().map_err(|e| map_sdk_error("get", e))
            })
            .await
            .map_err(at_uri)?;
        let invalid = |why: String| at_uri(Error::new(ErrorKind::InvalidKey, why));
        let unsupported = |why: String| at_uri(Error::new(ErrorKind::UnsupportedAlgorithm, why));
        let jwk = key
            .key
            .as_ref()
            .ok_or_else(|| invalid("the key has no JWK".into()))?;
        match &jwk.kty {
            Some(KeyType::Ec | KeyType::EcHsm) => {}
            other => {
                let kty = other
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), ToString::to_string);
                return Err(unsupported(format!(
                    "key type {kty} is not supported: kmssh signs with EC keys on P-256, P-384 or P-521"
                )));
            }
        }
        let (algorithm, signature_algorithm) = match &jwk.crv {
            Some(CurveName::P256) => (Algorithm::EcdsaP256Sha256, SignatureAlgorithm::Es256),
            Some(CurveName::P384) => (Algorithm::EcdsaP384Sha384, SignatureAlgorithm::Es384),
            Some(CurveName::P521) => (Algorithm::EcdsaP521Sha512, SignatureAlgorithm::Es512),
            other => {
                let crv = other
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), ToString::to_string);
                return Err(unsupported(format!(
                    "curve {crv} is not supported: use P-256, P-384 or P-521"
                )));
            }
        };
        let ops = jwk.key_ops.clone().unwrap_or_default();
        if !ops.iter().any(|op| op == KeyOperation::Sign.as_ref()) {
            return Err(invalid(format!(
                "the key's key_ops {ops:?} lack `sign`: add it (az keyvault key set-attributes --ops sign verify)"
            )));
        }
        if let Some(attributes) = &key.attributes {
            if attributes.enabled == Some(false) {
                return Err(invalid("the key is disabled: enable it to sign".into()));
            }
            let now = azure_core::time::OffsetDateTime::now_utc();
            if let Some(expires) = attributes.expires
                && expires <= now
            {
                return Err(invalid(format!("the key expired at {expires}")));
            }
            if let Some(not_before) = attributes.not_before
                && not_before > now
            {
                return Err(invalid(format!("the key is not valid before {not_before}")));
            }
        }
        let field = algorithm.field_len();
        let mut point = vec![0x04];
        point.extend(coordinate(jwk.x.as_ref(), field, "x").map_err(at_uri)?);
        point.extend(coordinate(jwk.y.as_ref(), field, "y").map_err(at_uri)?);
        let public = EcPublicKey::from_sec1_bytes(algorithm, &point).map_err(at_uri)?;
        let version = match &location.version {
            Some(v) => v.clone(),
            None => {
                let kid = jwk.kid.as_deref().unwrap_or_default();
                let pinned = kid
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if !is_name(&pinned) {
                    return Err(invalid(format!(
                        "cannot read the current version from kid `{kid}`"
                    )));
                }
                tracing::info!(uri = %uri, version = %pinned, "pinned the current Key Vault key version");
                pinned
            }
        };
        Ok(VerifiedSigner::new(Self {
            uri: uri.clone(),
            client,
            name: location.name.clone(),
            version,
            algorithm: signature_algorithm,
            public,
            retry,
        }))
    }

    /// The key version every signature uses.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }
}

#[async_trait]
impl RawSigner for AzureKeyVaultKey {
    fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn public_key(&self) -> &EcPublicKey {
        &self.public
    }

    async fn sign_digest_unverified(&self, digest: &[u8]) -> Result<EcdsaSignature> {
        let result = self
            .retry
            .run("sign", || async {
                let parameters = SignParameters {
                    algorithm: Some(self.algorithm.clone()),
                    value: Some(digest.to_vec()),
                };
                let body = parameters
                    .try_into()
                    .map_err(|e| map_sdk_error("sign", e))?;
                let options = KeyClientSignOptions {
                    key_version: Some(self.version.clone()),
                    ..KeyClientSignOptions::default()
                };
                let response = self
                    .client
                    .sign(&self.name, body, Some(options))
                    .await
                    .map_err(|e| map_sdk_error("sign", e))?;
                response.into_model().map_err(|e| map_sdk_error("sign", e))
            })
            .await?;
        let algorithm = self.public.algorithm();
        let raw = result
            .result
            .ok_or_else(|| Error::new(ErrorKind::BadSignature, "sign answered without a value"))?;
        if raw.len() != 2 * algorithm.field_len() {
            return Err(Error::new(
                ErrorKind::BadSignature,
                format!(
                    "Key Vault returned a {}-byte signature; {algorithm} r||s is exactly {} bytes",
                    raw.len(),
                    2 * algorithm.field_len()
                ),
            ));
        }
        // Key Vault identifiers compare case-insensitively: a URI may spell the name
        // `SSH-CA` for the key stored (and named in `kid`) as `ssh-ca`.
        if let Some(kid) = &result.kid
            && !kid
                .trim_end_matches('/')
                .to_ascii_lowercase()
                .ends_with(&format!("/{}/{}", self.name, self.version).to_ascii_lowercase())
        {
            return Err(Error::new(
                ErrorKind::BadSignature,
                format!("signed by {kid}, not the pinned version {}", self.version),
            ));
        }
        EcdsaSignature::from_fixed(algorithm, &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls_parse_and_http_is_refused() {
        let uri =
            KeyUri::parse("azure-kv:https://v.vault.azure.net/keys/ca/0123abcd").expect("uri");
        let loc = parse_key_url(&uri).expect("parses");
        assert_eq!(loc.vault, "https://v.vault.azure.net");
        assert_eq!(
            (loc.name.as_str(), loc.version.as_deref()),
            ("ca", Some("0123abcd"))
        );
        let hsm = KeyUri::parse("azure-kv:https://h.managedhsm.azure.net/keys/ca").expect("uri");
        assert_eq!(parse_key_url(&hsm).expect("parses").version, None);
        for bad in [
            "azure-kv:http://v.vault.azure.net/keys/ca",
            "azure-kv:https://v.vault.azure.net/secrets/ca",
            "azure-kv:https://v.vault.azure.net/keys/",
            "azure-kv:https://v.vault.azure.net/keys/c_a",
            "azure-kv:https://v.vault.azure.net/keys/ca/1/2",
        ] {
            let err = parse_key_url(&KeyUri::parse(bad).expect("uri")).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidUri, "{bad}");
        }
    }
}
