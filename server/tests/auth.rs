//! Authentication end to end: opaque tokens, client certificates built with rcgen, and OIDC ID
//! tokens signed with real keys, verified against a real loopback discovery/JWKS server.

#[path = "support/oidc.rs"]
mod oidc_support;

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kmssh_server::AuthMethod;
use kmssh_server::auth::{
    AuthError, Authenticator, CallerConfig, JwksTiming, MtlsMatch, OidcIssuerConfig, OidcMatch,
};
use oidc_support::{IssuerServer, LoopbackTls, SigningKey, jwks, now};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;

const AUDIENCE: &str = "kmssh";

fn bearer(token: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    metadata
}

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn caller(name: &str) -> CallerConfig {
    CallerConfig {
        name: name.to_owned(),
        policy: format!("{name}-policy"),
        token_sha256: None,
        mtls: None,
        oidc: None,
    }
}

fn token_caller(name: &str, token: &str) -> CallerConfig {
    CallerConfig {
        token_sha256: Some(sha256_hex(token)),
        ..caller(name)
    }
}

fn mtls_caller(name: &str, subject: Option<&str>, san: Option<&str>) -> CallerConfig {
    CallerConfig {
        mtls: Some(MtlsMatch {
            subject: subject.map(str::to_owned),
            san: san.map(str::to_owned),
        }),
        ..caller(name)
    }
}

fn oidc_caller(name: &str, issuer: &str, subject: &str, claims: &[(&str, &str)]) -> CallerConfig {
    CallerConfig {
        oidc: Some(OidcMatch {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }),
        ..caller(name)
    }
}

fn issuer_config(issuer: &str) -> OidcIssuerConfig {
    OidcIssuerConfig {
        issuer: issuer.to_owned(),
        audience: AUDIENCE.to_owned(),
        jwks_uri: None,
        ca_certificate: None,
    }
}

async fn refused(authenticator: &Authenticator, token: &str) -> String {
    match authenticator.authenticate(&bearer(token), None).await {
        Ok(identity) => panic!("token accepted as {identity:?}"),
        Err(error) => error.to_string(),
    }
}

// ---------------------------------------------------------------- opaque tokens

#[tokio::test]
async fn opaque_token_right_and_wrong() {
    let authenticator = Authenticator::new(
        &[
            token_caller("deployer", "s3cret-deployer"),
            token_caller("ci", "s3cret-ci"),
        ],
        &[],
    )
    .expect("valid configuration");

    let identity = authenticator
        .authenticate(&bearer("s3cret-ci"), None)
        .await
        .expect("right token");
    assert_eq!(identity.caller, "ci");
    assert_eq!(identity.policy, "ci-policy");
    assert_eq!(identity.method, AuthMethod::Token);
    assert_eq!(
        identity.attributes,
        BTreeMap::from([("caller".to_owned(), "ci".to_owned())])
    );

    let error = refused(&authenticator, "s3cret-c").await;
    assert_eq!(error, "no caller matches the bearer token");

    let error = authenticator
        .authenticate(&MetadataMap::new(), None)
        .await
        .expect_err("no credentials");
    assert!(matches!(error, AuthError::Missing), "{error}");
}

#[tokio::test]
async fn jwt_shaped_token_is_opaque_without_issuers() {
    let jwt_shaped = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln";
    let authenticator = Authenticator::new(&[token_caller("legacy", jwt_shaped)], &[])
        .expect("valid configuration");
    let identity = authenticator
        .authenticate(&bearer(jwt_shaped), None)
        .await
        .expect("opaque token");
    assert_eq!(identity.method, AuthMethod::Token);
}

// ---------------------------------------------------------------- mTLS

struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kmssh client CA");
        let key = rcgen::KeyPair::generate().expect("CA key");
        Self {
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A client certificate: DN as (type, value) pairs, least specific first as X.509
    /// stores it; SANs as given.
    fn leaf(&self, dn: &[(rcgen::DnType, &str)], sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("leaf parameters");
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().expect("leaf key");
        params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate")
            .der()
            .to_vec()
    }
}

fn email(address: &str) -> rcgen::SanType {
    rcgen::SanType::Rfc822Name(address.try_into().expect("IA5 email"))
}

fn dns(name: &str) -> rcgen::SanType {
    rcgen::SanType::DnsName(name.try_into().expect("IA5 DNS name"))
}

#[tokio::test]
async fn mtls_subject_and_san() {
    let ca = TestCa::new();
    let authenticator = Authenticator::new(
        &[
            mtls_caller("alice", Some("CN=alice,O=Example"), None),
            mtls_caller("builder", None, Some("build.example.com")),
            mtls_caller(
                "carol",
                Some("cn=carol,o=Example"),
                Some("carol@example.com"),
            ),
            token_caller("ci", "s3cret-ci"),
        ],
        &[],
    )
    .expect("valid configuration");
    assert!(authenticator.has_mtls_callers());

    let alice = ca.leaf(
        &[
            (rcgen::DnType::OrganizationName, "Example"),
            (rcgen::DnType::CommonName, "alice"),
        ],
        vec![email("alice@example.com"), dns("alice.example.com")],
    );
    let identity = authenticator
        .authenticate(&MetadataMap::new(), Some(std::slice::from_ref(&alice)))
        .await
        .expect("alice by subject");
    assert_eq!(identity.caller, "alice");
    assert_eq!(identity.policy, "alice-policy");
    assert_eq!(identity.method, AuthMethod::Mtls);
    assert_eq!(identity.attribute("caller"), Some("alice"));
    assert_eq!(identity.attribute("subject"), Some("CN=alice,O=Example"));
    assert_eq!(identity.attribute("cn"), Some("alice"));
    assert_eq!(identity.attribute("san.email"), Some("alice@example.com"));
    assert_eq!(identity.attribute("san.dns"), Some("alice.example.com"));

    // The bearer token wins over the certificate.
    let identity = authenticator
        .authenticate(&bearer("s3cret-ci"), Some(&[alice]))
        .await
        .expect("token with certificate");
    assert_eq!(identity.caller, "ci");
    assert_eq!(identity.method, AuthMethod::Token);

    let builder = ca.leaf(
        &[(rcgen::DnType::CommonName, "build-7")],
        vec![dns("build.example.com")],
    );
    let identity = authenticator
        .authenticate(&MetadataMap::new(), Some(&[builder]))
        .await
        .expect("builder by SAN");
    assert_eq!(identity.caller, "builder");
    assert_eq!(identity.attribute("san.dns"), Some("build.example.com"));
    assert_eq!(identity.attribute("san.email"), None);

    // Subject and SAN both configured: both must match.
    let carol = ca.leaf(
        &[
            (rcgen::DnType::OrganizationName, "Example"),
            (rcgen::DnType::CommonName, "carol"),
        ],
        vec![email("carol@example.com")],
    );
    let identity = authenticator
        .authenticate(&MetadataMap::new(), Some(&[carol]))
        .await
        .expect("carol by subject and SAN");
    assert_eq!(identity.caller, "carol");
    let carol_other_san = ca.leaf(
        &[
            (rcgen::DnType::OrganizationName, "Example"),
            (rcgen::DnType::CommonName, "carol"),
        ],
        vec![email("carol@elsewhere.example")],
    );
    let error = authenticator
        .authenticate(&MetadataMap::new(), Some(&[carol_other_san]))
        .await
        .expect_err("SAN mismatch");
    assert_eq!(
        error.to_string(),
        "no caller matches client certificate `CN=carol,O=Example`"
    );

    // Same CN, other organisation; and a SAN that only almost matches.
    let mallory = ca.leaf(
        &[
            (rcgen::DnType::OrganizationName, "Elsewhere"),
            (rcgen::DnType::CommonName, "alice"),
        ],
        vec![dns("build.example.com.evil")],
    );
    let error = authenticator
        .authenticate(&MetadataMap::new(), Some(&[mallory]))
        .await
        .expect_err("subject mismatch");
    assert!(
        matches!(error, AuthError::NoCertificateCaller { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("CN=alice,O=Elsewhere"),
        "{error}"
    );

    let error = authenticator
        .authenticate(&MetadataMap::new(), Some(&[b"not DER".to_vec()]))
        .await
        .expect_err("garbage certificate");
    assert!(matches!(error, AuthError::BadCertificate(_)), "{error}");

    let error = authenticator
        .authenticate(&MetadataMap::new(), Some(&[]))
        .await
        .expect_err("empty chain");
    assert!(matches!(error, AuthError::Missing), "{error}");
}

// ---------------------------------------------------------------- configuration

#[test]
fn configuration_errors() {
    let issuer = issuer_config("https://issuer.example");
    let cases: Vec<(Vec<CallerConfig>, Vec<OidcIssuerConfig>, &str)> = vec![
        (
            vec![token_caller("a", "x"), token_caller("a", "y")],
            vec![],
            "caller `a`: configured more than once",
        ),
        (
            vec![caller("a")],
            vec![],
            "caller `a`: exactly one of token_sha256, mtls, oidc must be set, found 0",
        ),
        (
            vec![CallerConfig {
                mtls: Some(MtlsMatch {
                    subject: Some("CN=a".to_owned()),
                    san: None,
                }),
                ..token_caller("a", "x")
            }],
            vec![],
            "found 2",
        ),
        (
            vec![CallerConfig {
                token_sha256: Some(sha256_hex("x").to_uppercase()),
                ..caller("a")
            }],
            vec![],
            "token_sha256 must be 64 lowercase hex digits",
        ),
        (
            vec![token_caller("a", "x"), token_caller("b", "x")],
            vec![],
            "caller `b`: token_sha256 is also caller `a`'s",
        ),
        (
            vec![mtls_caller("a", None, None)],
            vec![],
            "mtls needs a subject and/or a san",
        ),
        (
            vec![mtls_caller("a", Some("not a name"), None)],
            vec![],
            "is not an RFC 4514 name",
        ),
        (
            vec![oidc_caller("a", "https://other.example", "*", &[])],
            vec![issuer.clone()],
            "oidc issuer `https://other.example` is not a configured OIDC issuer",
        ),
        (
            vec![oidc_caller("a", "https://issuer.example", "", &[])],
            vec![issuer.clone()],
            "oidc subject is empty",
        ),
        (
            vec![],
            vec![issuer_config("http://issuer.example")],
            "must be https://",
        ),
        (
            vec![],
            vec![OidcIssuerConfig {
                jwks_uri: Some("http://keys.example/jwks".to_owned()),
                ..issuer.clone()
            }],
            "jwks_uri `http://keys.example/jwks` must be https://",
        ),
        (
            vec![],
            vec![OidcIssuerConfig {
                audience: String::new(),
                ..issuer.clone()
            }],
            "empty audience",
        ),
        (
            vec![],
            vec![issuer.clone(), issuer.clone()],
            "OIDC issuer `https://issuer.example`: configured more than once",
        ),
        (
            vec![],
            vec![OidcIssuerConfig {
                ca_certificate: Some("/nonexistent/ca.pem".into()),
                ..issuer.clone()
            }],
            "cannot read ca_certificate /nonexistent/ca.pem",
        ),
    ];
    for (callers, issuers, expected) in cases {
        let error = Authenticator::new(&callers, &issuers).expect_err(expected);
        assert!(
            error.to_string().contains(expected),
            "`{error}` does not say `{expected}`"
        );
    }

    // Loopback http:// is accepted (for tests).
    Authenticator::new(&[], &[issuer_config("http://127.0.0.1:9")]).expect("loopback issuer");

    let unknown_field = serde_json::from_value::<CallerConfig>(json!({
        "name": "a", "policy": "p", "token_sha256": sha256_hex("x"), "tokn": "x"
    }));
    assert!(unknown_field.is_err());
    let parsed: CallerConfig = serde_json::from_value(json!({
        "name": "gha", "policy": "deploy",
        "oidc": { "issuer": "https://issuer.example", "subject": "repo:org/*",
                  "claims": { "environment": "prod" } }
    }))
    .expect("OIDC caller");
    Authenticator::new(&[parsed], &[issuer]).expect("valid OIDC configuration");
}

// ---------------------------------------------------------------- OIDC

fn claims(issuer: &str, subject: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    })
}

const SUBJECT: &str = "repo:org/app:ref:refs/heads/main";

#[tokio::test]
async fn oidc_good_token_through_discovery_and_cache() {
    let key = SigningKey::rsa("rsa-1");
    let server = IssuerServer::start(jwks(&[&key])).await;
    let authenticator = Authenticator::new(
        &[
            oidc_caller(
                "deploy-prod",
                &server.issuer,
                "repo:org/*:ref:refs/heads/main",
                &[("environment", "prod"), ("repository", "org/*")],
            ),
            oidc_caller("any-org", &server.issuer, "repo:org/*", &[]),
        ],
        &[issuer_config(&server.issuer)],
    )
    .expect("valid configuration");

    let mut with_claims = claims(&server.issuer, SUBJECT);
    with_claims["environment"] = json!("prod");
    with_claims["repository"] = json!("org/app");
    with_claims["email"] = json!("alice@example.com");
    with_claims["email_verified"] = json!(true);
    let identity = authenticator
        .authenticate(&bearer(&key.sign(&with_claims)), None)
        .await
        .expect("good token");
    assert_eq!(identity.caller, "deploy-prod");
    assert_eq!(identity.policy, "deploy-prod-policy");
    assert_eq!(identity.method, AuthMethod::Oidc);
    assert_eq!(identity.attribute("caller"), Some("deploy-prod"));
    assert_eq!(identity.attribute("sub"), Some(SUBJECT));
    assert_eq!(identity.attribute("iss"), Some(server.issuer.as_str()));
    assert_eq!(identity.attribute("claim.repository"), Some("org/app"));
    assert_eq!(identity.attribute("claim.email"), Some("alice@example.com"));
    assert_eq!(identity.attribute("email.local"), Some("alice"));
    assert_eq!(identity.attribute("claim.iat"), None, "only string claims");

    // A claim that does not match moves on to the next caller, in configuration order.
    let mut staging = claims(&server.issuer, SUBJECT);
    staging["environment"] = json!("staging");
    staging["repository"] = json!("org/app");
    let identity = authenticator
        .authenticate(&bearer(&key.sign(&staging)), None)
        .await
        .expect("second caller");
    assert_eq!(identity.caller, "any-org");

    // Within leeway: expired 30 s ago is still accepted.
    let mut late = claims(&server.issuer, SUBJECT);
    late["exp"] = json!(now() - 30);
    authenticator
        .authenticate(&bearer(&key.sign(&late)), None)
        .await
        .expect("expired within leeway");

    let error = refused(
        &authenticator,
        &key.sign(&claims(&server.issuer, "repo:evil/app")),
    )
    .await;
    assert_eq!(
        error,
        format!(
            "no caller matches OIDC subject `repo:evil/app` of issuer `{}`",
            server.issuer
        )
    );

    // One discovery, one key-set fetch for all of the above.
    assert_eq!(server.discovery_hits(), 1);
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn oidc_rejections() {
    let key = SigningKey::rsa("rsa-1");
    let ec = SigningKey::es256("ec-1");
    let server = IssuerServer::start(jwks(&[&key, &ec])).await;
    let authenticator = Authenticator::new(
        &[oidc_caller("any", &server.issuer, "*", &[])],
        &[issuer_config(&server.issuer)],
    )
    .expect("valid configuration");
    let good = claims(&server.issuer, SUBJECT);
    authenticator
        .authenticate(&bearer(&key.sign(&good)), None)
        .await
        .expect("good token");

    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };

    let expired = with("exp", json!(now() - 3600));
    assert_eq!(
        refused(&authenticator, &key.sign(&expired)).await,
        "ID token rejected: token expired"
    );

    let other_issuer = with("iss", json!("https://other.example"));
    assert_eq!(
        refused(&authenticator, &key.sign(&other_issuer)).await,
        "ID token rejected: issuer `https://other.example` not configured"
    );

    let other_audience = with("aud", json!("someone-else"));
    let error = refused(&authenticator, &key.sign(&other_audience)).await;
    assert!(error.contains("audience mismatch"), "{error}");

    let not_yet = with("nbf", json!(now() + 3600));
    let error = refused(&authenticator, &key.sign(&not_yet)).await;
    assert!(error.contains("not yet valid"), "{error}");

    let future = with("iat", json!(now() + 3600));
    let error = refused(&authenticator, &key.sign(&future)).await;
    assert!(error.contains("issued in the future"), "{error}");

    let mut no_sub = good.clone();
    no_sub.as_object_mut().expect("object").remove("sub");
    let error = refused(&authenticator, &key.sign(&no_sub)).await;
    assert!(error.contains("claim `sub` missing"), "{error}");

    // Same kid, another key: the signature does not verify.
    let impostor = SigningKey::rsa("rsa-1");
    let error = refused(&authenticator, &impostor.sign(&good)).await;
    assert_eq!(error, "ID token rejected: signature invalid");

    // A valid token with one payload byte changed.
    let token = key.sign(&good);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = base64url(
        &good
            .to_string()
            .replace(SUBJECT, "repo:org/app:ref:refs/heads/mair"),
    );
    parts[1] = payload;
    let error = refused(&authenticator, &parts.join(".")).await;
    assert_eq!(error, "ID token rejected: signature invalid");

    // Unsigned.
    let unsigned = format!(
        "{}.{}.",
        base64url(r#"{"alg":"none","typ":"JWT"}"#),
        base64url(&good.to_string())
    );
    let error = refused(&authenticator, &unsigned).await;
    assert!(error.contains("alg: none"), "{error}");

    // HS256 keyed with the issuer's public key (the classic algorithm confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".to_owned());
    let public_key = key.jwk.to_string();
    let confused = jsonwebtoken::encode(
        &header,
        &good,
        &EncodingKey::from_secret(public_key.as_bytes()),
    )
    .expect("HS256 token");
    let error = refused(&authenticator, &confused).await;
    assert!(error.contains("algorithm `HS256` not accepted"), "{error}");

    // An RS256 header naming the ES256 key: no key fits that algorithm.
    let es256_token = ec.sign(&good);
    let (_, rest) = es256_token.split_once('.').expect("JWT");
    let mislabelled = format!("{}.{rest}", base64url(r#"{"alg":"RS256","kid":"ec-1"}"#));
    let error = refused(&authenticator, &mislabelled).await;
    assert!(error.contains("key `ec-1` (RS256)"), "{error}");

    assert_eq!(
        server.jwks_hits(),
        1,
        "rejections never refetch within 30 s"
    );
}

fn base64url(text: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(text.as_bytes())
}

#[tokio::test]
async fn oidc_unknown_kid_then_rotated_jwks() {
    let old = SigningKey::rsa("2024");
    let new = SigningKey::ed25519("2025");
    let server = IssuerServer::start(jwks(&[&old])).await;
    let refetch = Duration::from_millis(300);
    let authenticator = Authenticator::new(
        &[oidc_caller("any", &server.issuer, "*", &[])],
        &[issuer_config(&server.issuer)],
    )
    .expect("valid configuration")
    .with_jwks_timing(JwksTiming {
        min_refetch_interval: refetch,
        ..JwksTiming::default()
    });
    let good = claims(&server.issuer, SUBJECT);
    authenticator
        .authenticate(&bearer(&old.sign(&good)), None)
        .await
        .expect("old key");
    assert_eq!(server.jwks_hits(), 1);

    server.set_jwks(jwks(&[&new]));
    // Right after a fetch an unknown kid does not refetch (forged kids cannot hammer the issuer).
    let error = refused(&authenticator, &new.sign(&good)).await;
    assert!(error.contains("key `2025`"), "{error}");
    assert_eq!(server.jwks_hits(), 1);

    tokio::time::sleep(refetch + Duration::from_millis(100)).await;
    let identity = authenticator
        .authenticate(&bearer(&new.sign(&good)), None)
        .await
        .expect("rotated key");
    assert_eq!(identity.caller, "any");
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(server.discovery_hits(), 1, "discovery is remembered");

    // The retired key is gone.
    let error = refused(&authenticator, &old.sign(&good)).await;
    assert!(error.contains("key `2024`"), "{error}");
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn oidc_cache_expiry_refetches() {
    let key = SigningKey::es256("ec-1");
    let server = IssuerServer::start(jwks(&[&key])).await;
    let ttl = Duration::from_millis(200);
    let authenticator = Authenticator::new(
        &[oidc_caller("any", &server.issuer, "*", &[])],
        &[OidcIssuerConfig {
            jwks_uri: Some(server.jwks_uri()),
            ..issuer_config(&server.issuer)
        }],
    )
    .expect("valid configuration")
    .with_jwks_timing(JwksTiming {
        cache_ttl: ttl,
        ..JwksTiming::default()
    });
    let token = key.sign(&claims(&server.issuer, SUBJECT));
    for _ in 0..3 {
        authenticator
            .authenticate(&bearer(&token), None)
            .await
            .expect("ES256 token");
    }
    assert_eq!(server.jwks_hits(), 1);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    authenticator
        .authenticate(&bearer(&token), None)
        .await
        .expect("ES256 token after expiry");
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(
        server.discovery_hits(),
        0,
        "jwks_uri configured: no discovery"
    );
}

#[tokio::test]
async fn oidc_concurrent_first_requests_share_one_fetch() {
    let key = SigningKey::ed25519("ed-1");
    let server = IssuerServer::start(jwks(&[&key])).await;
    let authenticator = std::sync::Arc::new(
        Authenticator::new(
            &[oidc_caller("any", &server.issuer, "*", &[])],
            &[issuer_config(&server.issuer)],
        )
        .expect("valid configuration"),
    );
    let token = key.sign(&claims(&server.issuer, SUBJECT));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let authenticator = authenticator.clone();
            let token = token.clone();
            tokio::spawn(async move { authenticator.authenticate(&bearer(&token), None).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("EdDSA token");
    }
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(server.discovery_hits(), 1);
}

#[tokio::test]
async fn oidc_issuer_unreachable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let key = SigningKey::rsa("rsa-1");
    let authenticator = Authenticator::new(
        &[oidc_caller("any", &issuer, "*", &[])],
        &[issuer_config(&issuer)],
    )
    .expect("valid configuration");
    let error = authenticator
        .authenticate(&bearer(&key.sign(&claims(&issuer, SUBJECT))), None)
        .await
        .expect_err("unreachable issuer");
    assert!(
        matches!(error, AuthError::KeysUnavailable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("openid-configuration"),
        "{error}"
    );
}

#[tokio::test]
async fn oidc_over_https_with_loopback_ca() {
    let key = SigningKey::rsa("rsa-1");
    let tls = LoopbackTls::new();
    let server = IssuerServer::start_tls(jwks(&[&key]), tls.acceptor.clone()).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let ca_path = directory.path().join("issuer-ca.pem");
    std::fs::write(&ca_path, &tls.ca_pem).expect("write CA");
    let callers = [oidc_caller("any", &server.issuer, "*", &[])];
    let token = key.sign(&claims(&server.issuer, SUBJECT));

    let trusting = Authenticator::new(
        &callers,
        &[OidcIssuerConfig {
            ca_certificate: Some(ca_path),
            ..issuer_config(&server.issuer)
        }],
    )
    .expect("valid configuration");
    let identity = trusting
        .authenticate(&bearer(&token), None)
        .await
        .expect("token over HTTPS");
    assert_eq!(identity.caller, "any");

    // Without the CA the issuer's certificate is not trusted.
    let distrusting = Authenticator::new(&callers, &[issuer_config(&server.issuer)])
        .expect("valid configuration");
    let error = distrusting
        .authenticate(&bearer(&token), None)
        .await
        .expect_err("untrusted issuer certificate");
    assert!(
        matches!(error, AuthError::KeysUnavailable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
    assert_eq!(server.jwks_hits(), 1);
}
