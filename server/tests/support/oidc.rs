//! A loopback OIDC issuer for tests: discovery document and JWKS over real HTTP(S) (hyper),
//! and signing keys (aws-lc-rs / rcgen) that mint ID tokens with jsonwebtoken.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// Connections one test server accepts at most, so its accept loop is bounded.
const MAX_CONNECTIONS: usize = 1_000;

/// Seconds since 1970.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A key that signs ID tokens, with its public half as a JWK.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    /// The public JWK, with `kid` and `alg`.
    pub jwk: Value,
}

impl SigningKey {
    /// RSA-2048 (aws-lc-rs generates it in milliseconds), signing RS256.
    pub fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("generate RSA key");
        let pkcs8 = pair.as_der().expect("PKCS#8 of RSA key");
        // jsonwebtoken wants the PKCS#1 RSAPrivateKey that PKCS#8 wraps.
        let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8.as_ref()).expect("parse PKCS#8");
        let encoding = EncodingKey::from_rsa_der(info.private_key.as_bytes());
        Self::new(kid, Algorithm::RS256, encoding)
    }

    /// ECDSA P-256, signing ES256.
    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("generate P-256 key");
        Self::new(
            kid,
            Algorithm::ES256,
            EncodingKey::from_ec_der(&pair.serialize_der()),
        )
    }

    /// Ed25519, signing EdDSA.
    pub fn ed25519(kid: &str) -> Self {
        let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().expect("generate Ed25519");
        let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8 v1 of Ed25519 key");
        Self::new(
            kid,
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(pkcs8.as_ref()),
        )
    }

    fn new(kid: &str, algorithm: Algorithm, encoding: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).expect("JWK of key");
        jwk.common.key_id = Some(kid.to_owned());
        let jwk = serde_json::to_value(&jwk).expect("JWK as JSON");
        Self {
            kid: kid.to_owned(),
            algorithm,
            encoding,
            jwk,
        }
    }

    /// A signed token with these claims, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign token")
    }
}

/// A JWKS of these keys.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() })
}

struct State {
    issuer: String,
    jwks: Mutex<Value>,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

/// An issuer on 127.0.0.1: `/.well-known/openid-configuration` and `/jwks`. Stops on drop
/// (and with the test's runtime).
pub struct IssuerServer {
    /// `http://127.0.0.1:PORT` or `https://…`: the issuer identifier and discovery base.
    pub issuer: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl IssuerServer {
    /// Serves plain HTTP.
    pub async fn start(jwks: Value) -> Self {
        Self::serve(jwks, None).await
    }

    /// Serves HTTPS with this acceptor.
    pub async fn start_tls(jwks: Value, acceptor: TlsAcceptor) -> Self {
        Self::serve(jwks, Some(acceptor)).await
    }

    async fn serve(jwks: Value, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local address").port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = format!("{scheme}://127.0.0.1:{port}");
        let state = Arc::new(State {
            issuer: issuer.clone(),
            jwks: Mutex::new(jwks),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let served = state.clone();
        let task = tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _peer)) = listener.accept().await else {
                    break;
                };
                let state = served.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(respond(&state, &request)) }
                    });
                    // Connection errors (a client giving up, a refused handshake) are the
                    // tests' business, not the server's.
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            issuer,
            state,
            task,
        }
    }

    /// Publishes another key set (key rotation).
    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().expect("JWKS lock") = jwks;
    }

    /// Where the key set is.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// How many times the discovery document was fetched.
    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// How many times the key set was fetched.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }
}

impl Drop for IssuerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match request.uri().path() {
        "/.well-known/openid-configuration" => {
            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
            json!({
                "issuer": state.issuer,
                "jwks_uri": format!("{}/jwks", state.issuer),
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            })
        }
        "/jwks" => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            state.jwks.lock().expect("JWKS lock").clone()
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A loopback CA and a TLS acceptor whose certificate (for 127.0.0.1) it signed.
pub struct LoopbackTls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Serves the CA-signed certificate.
    pub acceptor: TlsAcceptor,
}

impl LoopbackTls {
    pub fn new() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kmssh test issuer CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let ca = rcgen::Issuer::new(ca_params, ca_key);

        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server parameters");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .expect("server certificate");

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .expect("server TLS config");
        Self {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}
