//! [`AzureKeyVaultKey`]: a Key Vault key (EC or RSA) opened and checked (`get key`), its
//! version pinned, signing digests with `sign`; and the key URL parser.

use async_trait::async_trait;
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    CurveName, JsonWebKey, KeyClientGetKeyOptions, KeyClientSignOptions, KeyOperation, KeyType,
    SignParameters, SignatureAlgorithm,
};
use kmssh_core::rsa::BoxedUint;
use kmssh_core::{
    Algorithm, Curve, EcPublicKey, EcdsaSignature, Error, ErrorKind, KeyUri, MAX_RSA_BITS,
    MIN_RSA_BITS, PublicKey, RawSigner, Result, RetryPolicy, RsaSignature, Signature,
    SigningPayload, VerifiedSigner,
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
    public: PublicKey,
    algorithms: &'static [Algorithm],
    retry: RetryPolicy,
}

/// The JWS algorithm Key Vault signs `algorithm` with: `ES256`/`ES384`/`ES512` for ECDSA,
/// `RS256`/`RS384`/`RS512` (PKCS#1 v1.5, never `PS*`) for RSA; `None` for Ed25519, which
/// Key Vault does not offer.
#[must_use]
pub(crate) fn jws_algorithm(algorithm: Algorithm) -> Option<SignatureAlgorithm> {
    match algorithm {
        Algorithm::EcdsaP256Sha256 => Some(SignatureAlgorithm::Es256),
        Algorithm::EcdsaP384Sha384 => Some(SignatureAlgorithm::Es384),
        Algorithm::EcdsaP521Sha512 => Some(SignatureAlgorithm::Es512),
        Algorithm::RsaPkcs1Sha256 => Some(SignatureAlgorithm::Rs256),
        Algorithm::RsaPkcs1Sha384 => Some(SignatureAlgorithm::Rs384),
        Algorithm::RsaPkcs1Sha512 => Some(SignatureAlgorithm::Rs512),
        Algorithm::Ed25519 => None,
    }
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
            .field("key", &self.public.description())
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
    /// [`ErrorKind::UnsupportedAlgorithm`] for key types other than `EC`, `EC-HSM`, `RSA`
    /// and `RSA-HSM` (named: `oct`, `OKP`…), P-256K keys and RSA keys outside 2048–8192
    /// bits; [`ErrorKind::InvalidKey`] for keys without the `sign` operation, disabled,
    /// expired or not yet valid, or a malformed JWK; provider failures mapped to kinds
    /// after retries.
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
        let jwk = key
            .key
            .as_ref()
            .ok_or_else(|| invalid("the key has no JWK".into()))?;
        // The key type first: it decides which JWK members matter.
        let public = public_key(jwk).map_err(at_uri)?;
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
            // Key Vault lets an RSA key sign RS256, RS384 and RS512 whatever its size; an
            // EC key signs with its curve's one algorithm.
            algorithms: public.algorithms(),
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

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn algorithms(&self) -> &[Algorithm] {
        self.algorithms
    }

    async fn sign_unverified(&self, payload: &SigningPayload<'_>) -> Result<Signature> {
        let algorithm = payload.algorithm();
        let jws = jws_algorithm(algorithm).ok_or_else(|| {
            Error::new(
                ErrorKind::UnsupportedAlgorithm,
                format!("Azure Key Vault does not sign {algorithm}"),
            )
        })?;
        let result = self
            .retry
            .run("sign", || async {
                // The digest, computed here: Key Vault's RS* build the DigestInfo
                // themselves, as its ES* take the bare hash.
                let parameters = SignParameters {
                    algorithm: Some(jws.clone()),
                    value: Some(payload.as_bytes().to_vec()),
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
        let raw = result
            .result
            .ok_or_else(|| Error::new(ErrorKind::BadSignature, "sign answered without a value"))?;
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
        decode_signature(&self.public, algorithm, &raw)
    }
}

/// Decodes `sign`'s `value`: fixed-width `r||s` for ECDSA (JWS, RFC 7518 §3.4), the
/// modulus-length integer for RSA (§3.3), each checked for its exact length.
fn decode_signature(public: &PublicKey, algorithm: Algorithm, raw: &[u8]) -> Result<Signature> {
    let wrong_length = |expected: usize, form: &str| {
        Error::new(
            ErrorKind::BadSignature,
            format!(
                "Key Vault returned a {}-byte signature; {form} from an {} key is exactly {expected} bytes",
                raw.len(),
                public.description()
            ),
        )
    };
    match (algorithm.curve(), algorithm.hash()) {
        (Some(curve), _) => {
            if raw.len() != 2 * curve.field_len() {
                return Err(wrong_length(2 * curve.field_len(), "r||s"));
            }
            EcdsaSignature::from_fixed(curve, raw).map(Signature::Ecdsa)
        }
        (None, Some(hash)) => {
            let modulus = public.rsa_bits().map_or(0, |bits| bits.div_ceil(8));
            if raw.len() != modulus {
                return Err(wrong_length(modulus, "a PKCS#1 v1.5 signature"));
            }
            RsaSignature::new(hash, raw).map(Signature::Rsa)
        }
        (None, None) => Err(Error::new(
            ErrorKind::UnsupportedAlgorithm,
            format!("Azure Key Vault does not sign {algorithm}"),
        )),
    }
}

/// A JWK member's bytes, or an error naming the member.
fn member<'a>(field: Option<&'a Vec<u8>>, which: &str) -> Result<&'a [u8]> {
    field
        .map(Vec::as_slice)
        .ok_or_else(|| Error::new(ErrorKind::InvalidKey, format!("the JWK has no `{which}`")))
}

/// The public key in a Key Vault JWK: `EC`/`EC-HSM` on P-256, P-384 or P-521 (`x`, `y`),
/// or `RSA`/`RSA-HSM` of 2048 to 8192 bits (`n`, `e`). Every other key type is refused
/// by name; Key Vault has no Ed25519 keys at all.
///
/// # Errors
/// [`ErrorKind::UnsupportedAlgorithm`] naming the key type, curve or RSA size;
/// [`ErrorKind::InvalidKey`] for missing or malformed members.
pub(crate) fn public_key(jwk: &JsonWebKey) -> Result<PublicKey> {
    let unsupported = |why: String| Error::new(ErrorKind::UnsupportedAlgorithm, why);
    match &jwk.kty {
        Some(KeyType::Ec | KeyType::EcHsm) => {
            let curve = match &jwk.crv {
                Some(CurveName::P256) => Curve::P256,
                Some(CurveName::P384) => Curve::P384,
                Some(CurveName::P521) => Curve::P521,
                Some(CurveName::P256K) => {
                    return Err(unsupported(
                        "curve P-256K (secp256k1) is not supported: use P-256, P-384 or P-521"
                            .into(),
                    ));
                }
                other => {
                    let crv = other
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), ToString::to_string);
                    return Err(unsupported(format!(
                        "curve {crv} is not supported: use P-256, P-384 or P-521"
                    )));
                }
            };
            let field = curve.field_len();
            let mut point = vec![0x04];
            point.extend(coordinate(jwk.x.as_ref(), field, "x")?);
            point.extend(coordinate(jwk.y.as_ref(), field, "y")?);
            EcPublicKey::from_sec1_bytes(curve, &point).map(PublicKey::Ecdsa)
        }
        Some(KeyType::Rsa | KeyType::RsaHsm) => {
            rsa_public_key(member(jwk.n.as_ref(), "n")?, member(jwk.e.as_ref(), "e")?)
        }
        Some(KeyType::Oct | KeyType::OctHsm) => {
            let kty = jwk
                .kty
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(unsupported(format!(
                "key type {kty} is a symmetric key, which signs only HMACs (HS256…): kmssh signs with RSA (RSA, RSA-HSM) or EC (EC, EC-HSM) keys"
            )))
        }
        other => {
            let kty = other
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string);
            Err(unsupported(format!(
                "key type {kty} is not supported: Azure Key Vault has no Ed25519 signing keys; kmssh signs there with RSA (RSA, RSA-HSM) or EC (EC, EC-HSM) keys"
            )))
        }
    }
}

/// An RSA public key from a JWK's `n` and `e` (big-endian, leading zeros allowed), of
/// [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits.
fn rsa_public_key(n: &[u8], e: &[u8]) -> Result<PublicKey> {
    let strip =
        |bytes: &'_ [u8]| -> Vec<u8> { bytes.iter().copied().skip_while(|b| *b == 0).collect() };
    let (n, e) = (strip(n), strip(e));
    // Sized here, before any arithmetic, so a small or huge modulus is refused by name.
    let bits = n
        .first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(Error::new(
            ErrorKind::UnsupportedAlgorithm,
            format!(
                "the key is RSA-{bits}: kmssh signs with RSA keys of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
            ),
        ));
    }
    let key = kmssh_core::rsa::PublicKey::new_with_size_limits(
        BoxedUint::from_be_slice_vartime(&n),
        BoxedUint::from_be_slice_vartime(&e),
        MIN_RSA_BITS..=MAX_RSA_BITS,
    )
    .map_err(|err| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("the JWK's RSA-{bits} `n` and `e` are not an RSA public key"),
        )
        .with_source(err.to_string())
    })?;
    PublicKey::rsa(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::Encoding as _;

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

    fn jwk(json: serde_json::Value) -> JsonWebKey {
        serde_json::from_value(json).expect("a JWK")
    }

    /// `n` of `bits` bits: odd, top bit set (a plausible modulus for the size checks).
    fn modulus(bits: usize) -> String {
        let mut n = vec![0xc5u8; bits / 8];
        n[0] = 0xc5;
        let last = n.len() - 1;
        n[last] |= 1;
        base64ct::Base64UrlUnpadded::encode_string(&n)
    }

    #[test]
    fn rsa_jwks_give_rsa_keys_that_sign_rs_algorithms_only() {
        for kty in ["RSA", "RSA-HSM"] {
            for bits in [2048, 3072, 4096, 8192] {
                let key = public_key(&jwk(serde_json::json!({
                    "kty": kty, "n": modulus(bits), "e": "AQAB",
                })))
                .expect("an RSA key");
                assert_eq!(key.rsa_bits(), Some(bits), "{kty}");
                assert_eq!(
                    key.algorithms(),
                    &[
                        Algorithm::RsaPkcs1Sha512,
                        Algorithm::RsaPkcs1Sha256,
                        Algorithm::RsaPkcs1Sha384
                    ]
                );
            }
        }
        // A leading zero octet in `n` changes nothing.
        let mut n = vec![0u8];
        n.extend(base64ct::Base64UrlUnpadded::decode_vec(&modulus(2048)).expect("b64"));
        let padded = public_key(&jwk(serde_json::json!({
            "kty": "RSA", "n": base64ct::Base64UrlUnpadded::encode_string(&n), "e": "AQAB",
        })))
        .expect("an RSA key");
        assert_eq!(padded.rsa_bits(), Some(2048));
        let names: Vec<String> = Algorithm::ALL
            .into_iter()
            .filter_map(jws_algorithm)
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            names,
            ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512"],
            "never PS*"
        );
        assert!(jws_algorithm(Algorithm::Ed25519).is_none());
    }

    #[test]
    fn other_key_types_and_sizes_are_refused_by_name() {
        for (json, words) in [
            (
                serde_json::json!({"kty": "RSA", "n": modulus(1024), "e": "AQAB"}),
                &["RSA-1024", "2048"][..],
            ),
            (
                serde_json::json!({"kty": "RSA", "n": modulus(8200), "e": "AQAB"}),
                &["RSA-8200", "8192"][..],
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
                &["OKP", "no Ed25519"][..],
            ),
            (serde_json::json!({"kty": "oct"}), &["oct", "symmetric"][..]),
            (
                serde_json::json!({"kty": "oct-HSM"}),
                &["oct-HSM", "symmetric"][..],
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256K", "x": "AAAA", "y": "AAAA"}),
                &["P-256K"][..],
            ),
            (
                serde_json::json!({"n": modulus(2048)}),
                &["none", "no Ed25519"][..],
            ),
        ] {
            let err = public_key(&jwk(json.clone())).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{json}");
            for word in words {
                assert!(err.to_string().contains(word), "{json}: {err}");
            }
        }
        for json in [
            serde_json::json!({"kty": "RSA", "e": "AQAB"}),
            serde_json::json!({"kty": "RSA", "n": modulus(2048)}),
            // An even modulus is no RSA key.
            serde_json::json!({"kty": "RSA", "n": base64ct::Base64UrlUnpadded::encode_string(&[0xc4u8; 256]), "e": "AQAB"}),
        ] {
            let err = public_key(&jwk(json.clone())).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::InvalidKey, "{json}: {err}");
        }
    }

    #[test]
    fn rsa_answers_must_be_modulus_length() {
        let key = public_key(&jwk(serde_json::json!({
            "kty": "RSA", "n": modulus(3072), "e": "AQAB",
        })))
        .expect("an RSA key");
        let signature =
            decode_signature(&key, Algorithm::RsaPkcs1Sha256, &[1u8; 384]).expect("decodes");
        assert_eq!(signature.algorithm(), Algorithm::RsaPkcs1Sha256);
        let err =
            decode_signature(&key, Algorithm::RsaPkcs1Sha512, &[1u8; 383]).expect_err("short");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
        assert!(err.to_string().contains("383-byte"), "{err}");
        assert!(err.to_string().contains("384 bytes"), "{err}");
    }
}
