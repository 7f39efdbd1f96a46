//! The service over TLS on 127.0.0.1, with certificates made by rcgen: client certificates
//! (mTLS) from the configured client CA and from another CA, bearer tokens without a client
//! certificate, and OIDC ID tokens from a loopback issuer.

#[allow(dead_code)]
#[path = "support/oidc.rs"]
mod oidc_support;
#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::time::Duration;

use kmssh_backend_local as _;
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{CertificateType, unix_now};
use kmssh_server::ledger::{Ledger, LedgerFilter, RefusalFilter};
use kmssh_server::{Client, ClientError, ClientOptions};
use oidc_support::{IssuerServer, SigningKey, jwks, now};
use serde_json::{Value, json};
use server::{CI, Running, subject, token_hash};
use tonic::Code;

const AUDIENCE: &str = "kmssh";

/// A CA made by rcgen, with its certificate as PEM.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

/// A certificate and its key, PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// The server's certificate: 127.0.0.1 (an IP SAN) and localhost.
    fn server(&self) -> Leaf {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kmssh test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(&params)
    }

    /// A client certificate `CN=cn,O=Example`.
    fn client(&self, cn: &str) -> Leaf {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("client parameters");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params)
    }

    fn sign(&self, params: &rcgen::CertificateParams) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Every certificate the tests use; the server's files written into the test's folder.
struct Pki {
    server_ca: TestCa,
    alice: Leaf,
    stranger: Leaf,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let server_ca = TestCa::new("kmssh test server CA");
        let client_ca = TestCa::new("kmssh test client CA");
        let other_ca = TestCa::new("someone else's CA");
        let server = server_ca.server();
        std::fs::write(dir.join("server.pem"), &server.cert).expect("write");
        std::fs::write(dir.join("server-key.pem"), &server.key).expect("write");
        std::fs::write(dir.join("clients-ca.pem"), &client_ca.pem).expect("write");
        Self {
            alice: client_ca.client("alice-laptop"),
            // Same subject as alice's, from a CA the server does not trust.
            stranger: other_ca.client("alice-laptop"),
            server_ca,
        }
    }
}

/// TLS with client certificates; `oidc` is an `[[oidc]]` section (issuer and callers), or
/// empty.
fn config(dir: &Path, oidc: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
listen = "127.0.0.1:0"

[tls]
certificate = "server.pem"
key = "server-key.pem"
client_ca = "clients-ca.pem"

[keys]
user-ca = "local:ephemeral?type=ecdsa"

[ledger]
url = "sqlite:{dir}/ledger.db"

[audit]
path = "{dir}/audit.jsonl"

[[caller]]
name = "alice-laptop"
policy = "laptops"
mtls = {{ subject = "CN=alice-laptop,O=Example" }}

[[caller]]
name = "ci"
policy = "ci"
token_sha256 = "{ci}"

[policy.laptops]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["{{cn}}"]
max_validity = "8h"

[policy.ci]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["deploy"]
max_validity = "1h"

[policy.people]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["{{claim.email.local}}"]
max_validity = "8h"
{oidc}
"#,
        ci = token_hash(CI),
    )
}

fn request(principals: &[&str]) -> CertificateSigningRequest {
    let now = unix_now();
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: "tls-test".into(),
        serial: 0,
        principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        valid_after: now,
        valid_before: now + 3600,
        public_key: subject(),
    }
}

fn https(running: &Running) -> String {
    format!("https://127.0.0.1:{}", running.address.port())
}

async fn connect(
    running: &Running,
    pki: &Pki,
    identity: Option<&Leaf>,
    token: Option<&str>,
) -> Result<Client, ClientError> {
    Client::connect(ClientOptions {
        server: https(running),
        ca_certificate: Some(pki.server_ca.pem.clone().into_bytes()),
        client_identity: identity
            .map(|l| (l.cert.clone().into_bytes(), l.key.clone().into_bytes())),
        token: token.map(str::to_owned),
        timeout: Some(Duration::from_secs(20)),
        ..ClientOptions::default()
    })
    .await
}

/// Asks for a certificate for `principals` with the CA's check.
async fn sign(client: &mut Client, principals: &[&str]) -> Result<Vec<String>, ClientError> {
    let ca = client.certificate_authority("user-ca").await?;
    let certificate = client
        .sign("user-ca", &request(principals), Some(&ca))
        .await?;
    Ok(certificate.as_ssh_key().valid_principals().to_vec())
}

fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_caller_gets_a_certificate_its_cn_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let running = Running::start(dir.path(), &config(dir.path(), "")).await;
    let mut alice = connect(&running, &pki, Some(&pki.alice), None)
        .await
        .expect("mTLS connect");
    assert_eq!(
        sign(&mut alice, &["alice-laptop"])
            .await
            .expect("certificate"),
        ["alice-laptop"]
    );
    let (code, message) = refused(sign(&mut alice, &["root"]).await);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("policy rule `principals`"), "{message}");
    running.stop().await.expect("stop");

    let ledger = Ledger::open(&format!("sqlite:{}/ledger.db", dir.path().display()))
        .await
        .expect("ledger");
    let records = ledger.list(&LedgerFilter::default()).await.expect("list");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].caller, "alice-laptop");
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_caller_needs_no_client_certificate_and_no_credentials_is_unauthenticated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let running = Running::start(dir.path(), &config(dir.path(), "")).await;

    let mut ci = connect(&running, &pki, None, Some(CI))
        .await
        .expect("TLS connect without a client certificate");
    assert_eq!(
        sign(&mut ci, &["deploy"]).await.expect("certificate"),
        ["deploy"]
    );

    let mut nobody = connect(&running, &pki, None, None)
        .await
        .expect("TLS connect without credentials");
    let (code, message) = refused(sign(&mut nobody, &["deploy"]).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(message.contains("no credentials"), "{message}");

    // Plaintext to the TLS port does not get through either.
    let plaintext = Client::connect(ClientOptions {
        server: running.url(),
        token: Some(CI.into()),
        timeout: Some(Duration::from_secs(10)),
        ..ClientOptions::default()
    })
    .await;
    if let Ok(mut plaintext) = plaintext {
        let result = sign(&mut plaintext, &["deploy"]).await;
        assert!(result.is_err(), "plaintext to a TLS port: {result:?}");
    }
    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_fails_the_handshake_and_the_server_serves_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let running = Running::start(dir.path(), &config(dir.path(), "")).await;

    // TLS 1.3: the client may finish its side of the handshake before the server refuses
    // the certificate, so the failure shows at connect or at the first request.
    match connect(&running, &pki, Some(&pki.stranger), None).await {
        Err(ClientError::Connect { server, source }) => {
            eprintln!("foreign certificate refused at connect to {server}: {source:?}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(mut stranger) => match sign(&mut stranger, &["alice-laptop"]).await {
            Err(ClientError::Refused { code, message }) => {
                eprintln!("foreign certificate refused at the first request: {code:?} {message}");
                // tonic's client reports the connection the server closed as Unknown
                // ("transport error"), Cancelled or Unavailable, by timing.
                assert!(
                    matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled),
                    "{code:?}: {message}"
                );
            }
            other => panic!("a certificate from another CA got through: {other:?}"),
        },
    }
    // A token over a connection presenting the foreign certificate does not help either.
    if let Ok(mut stranger) = connect(&running, &pki, Some(&pki.stranger), Some(CI)).await {
        let result = sign(&mut stranger, &["deploy"]).await;
        assert!(
            matches!(
                &result,
                Err(ClientError::Connect { .. }
                    | ClientError::Refused {
                        code: Code::Unavailable | Code::Unknown | Code::Cancelled,
                        ..
                    })
            ),
            "{result:?}"
        );
    }

    let mut alice = connect(&running, &pki, Some(&pki.alice), None)
        .await
        .expect("the good client connects");
    assert_eq!(
        sign(&mut alice, &["alice-laptop"])
            .await
            .expect("certificate"),
        ["alice-laptop"]
    );
    running.stop().await.expect("stop");

    let ledger = Ledger::open(&format!("sqlite:{}/ledger.db", dir.path().display()))
        .await
        .expect("ledger");
    assert_eq!(ledger.count_issued().await.expect("count"), 1);
    // The foreign certificate's requests never reached the service: nothing refused there.
    let refusals = ledger
        .list_refusals(&RefusalFilter::default())
        .await
        .expect("refusals");
    assert!(refusals.is_empty(), "{refusals:?}");
    ledger.close().await;
}

fn oidc_claims(issuer: &str, audience: &str, exp: u64) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": "user-4711",
        "iat": now.min(exp),
        "nbf": now.min(exp) - 10,
        "exp": exp,
        "email": "alice@example.com",
        "email_verified": true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_caller_gets_the_principal_its_email_claim_names() {
    let key = SigningKey::es256("es-1");
    let issuer = IssuerServer::start(jwks(&[&key])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let oidc = format!(
        r#"
[[oidc]]
issuer = "{issuer}"
audience = "{AUDIENCE}"

[[caller]]
name = "people"
policy = "people"
oidc = {{ issuer = "{issuer}", subject = "user-*" }}
"#,
        issuer = issuer.issuer
    );
    let running = Running::start(dir.path(), &config(dir.path(), &oidc)).await;

    let good = key.sign(&oidc_claims(&issuer.issuer, AUDIENCE, now() + 300));
    let mut person = connect(&running, &pki, None, Some(&good))
        .await
        .expect("connect");
    assert_eq!(
        sign(&mut person, &["alice"]).await.expect("certificate"),
        ["alice"]
    );
    let (code, message) = refused(sign(&mut person, &["bob"]).await);
    assert_eq!(code, Code::PermissionDenied, "{message}");

    let expired = key.sign(&oidc_claims(&issuer.issuer, AUDIENCE, now() - 3600));
    let mut late = connect(&running, &pki, None, Some(&expired))
        .await
        .expect("connect");
    let (code, message) = refused(sign(&mut late, &["alice"]).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(message.contains("token expired"), "{message}");

    let elsewhere = key.sign(&oidc_claims(&issuer.issuer, "another-service", now() + 300));
    let mut misdirected = connect(&running, &pki, None, Some(&elsewhere))
        .await
        .expect("connect");
    let (code, message) = refused(sign(&mut misdirected, &["alice"]).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(message.contains("audience mismatch"), "{message}");

    // Signed by another key under the same `kid`: the signature does not verify.
    let rogue = SigningKey::es256("es-1");
    let forged = rogue.sign(&oidc_claims(&issuer.issuer, AUDIENCE, now() + 300));
    let mut forger = connect(&running, &pki, None, Some(&forged))
        .await
        .expect("connect");
    let (code, message) = refused(sign(&mut forger, &["alice"]).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(message.contains("signature invalid"), "{message}");
    running.stop().await.expect("stop");

    let ledger = Ledger::open(&format!("sqlite:{}/ledger.db", dir.path().display()))
        .await
        .expect("ledger");
    let records = ledger.list(&LedgerFilter::default()).await.expect("list");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].caller, "people");
    assert_eq!(records[0].principals, ["alice"]);
    ledger.close().await;
}
