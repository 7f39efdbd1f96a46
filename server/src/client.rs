//! The client: sends a signing request to a kmssh (or paramiko-cloud) signing service and
//! checks what comes back before handing it out.

use std::time::Duration;

use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{Certificate, VerifyOptions};
use tonic::metadata::MetadataValue;
use tonic::transport::{
    Certificate as TlsCertificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity,
};
use tonic::{Code, Request};

use crate::wire::proto::signer_client::SignerClient;
use crate::wire::revocation::revocation_client::RevocationClient;
use crate::wire::{CloudProvider, GetCertificateAuthorityRequest, SignCertificateRequest};
use crate::wire::{GetKrlRequest, RevokeRequest, RevokeResponse};

/// Where and how to connect.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// `https://host:port`, or `http://127.0.0.1:port` for a service on loopback run with
    /// `--insecure-loopback`.
    pub server: String,
    /// PEM bundle of the CAs the server's certificate must chain to (default: the
    /// system's roots).
    pub ca_certificate: Option<Vec<u8>>,
    /// PEM certificate and key presented for mTLS.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// A bearer token (opaque, or an OIDC ID token).
    pub token: Option<String>,
    /// The wire `provider` to send (paramiko-cloud services need the right one; kmssh
    /// accepts any with a configured key name).
    pub provider: Option<CloudProvider>,
    /// Per-request deadline (default 30 s).
    pub timeout: Option<Duration>,
}

/// Why a request did not yield a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The options cannot be used (bad URL, unreadable PEM, token with bad characters).
    #[error("{0}")]
    Options(String),
    /// The connection failed.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server URL.
        server: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The service answered with an error status.
    #[error("the service refused ({code:?}): {message}")]
    Refused {
        /// The gRPC status code.
        code: Code,
        /// Its message (the rule that refused, for policy refusals).
        message: String,
    },
    /// The answer is not what was asked for, or does not verify.
    #[error("the service's answer is unusable: {0}")]
    BadAnswer(String),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        // A status made on this side from a broken connection (a service stopping sends
        // GOAWAY; a reset or a broken pipe) is "try again", whatever code tonic gave it.
        let lost = std::error::Error::source(&status).is_some_and(|source| {
            source.is::<tonic::transport::Error>()
                || source.to_string().contains("h2 protocol error")
                || source.to_string().contains("broken pipe")
        });
        if lost && status.code() != Code::Ok {
            return Self::Refused {
                code: Code::Unavailable,
                message: format!("the connection was lost: {}", status.message()),
            };
        }
        Self::Refused {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// A connection to a signing service.
pub struct Client {
    inner: SignerClient<Channel>,
    revocation: RevocationClient<Channel>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    provider: CloudProvider,
    timeout: Duration,
}

impl Client {
    /// Connects (TLS for `https://`).
    ///
    /// # Errors
    /// [`ClientError::Options`] or [`ClientError::Connect`].
    pub async fn connect(options: ClientOptions) -> Result<Self, ClientError> {
        let mut endpoint = Endpoint::from_shared(options.server.clone())
            .map_err(|e| ClientError::Options(format!("--server {}: {e}", options.server)))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        if options.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &options.ca_certificate {
                Some(pem) => tls.ca_certificate(TlsCertificate::from_pem(pem)),
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = &options.client_identity {
                tls = tls.identity(TlsIdentity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|source| ClientError::Connect {
                    server: options.server.clone(),
                    source,
                })?;
        } else if options.client_identity.is_some() || options.ca_certificate.is_some() {
            return Err(ClientError::Options(format!(
                "{}: TLS options need an https:// server",
                options.server
            )));
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                server: options.server.clone(),
                source,
            })?;
        let token = options
            .token
            .as_deref()
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {}", t.trim())).map_err(|_| {
                    ClientError::Options("the token has characters a header cannot carry".into())
                })
            })
            .transpose()?;
        Ok(Self {
            inner: SignerClient::new(channel.clone()),
            revocation: RevocationClient::new(channel),
            token,
            provider: options.provider.unwrap_or(CloudProvider::Aws),
            timeout: options.timeout.unwrap_or(Duration::from_secs(30)),
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }

    /// The CA public key of the service's key `key`.
    ///
    /// # Errors
    /// [`ClientError`]; a blob that is not an SSH public key is [`ClientError::BadAnswer`].
    pub async fn certificate_authority(&mut self, key: &str) -> Result<KeyData, ClientError> {
        let request = self.request(GetCertificateAuthorityRequest::new(self.provider, key));
        let answer = self
            .inner
            .get_certificate_authority(request)
            .await?
            .into_inner();
        let mut blob = answer.public_key.as_slice();
        let public_key = <KeyData as kmssh_pki::ssh_key::encoding::Decode>::decode(&mut blob)
            .map_err(|e| ClientError::BadAnswer(format!("publicKey: {e}")))?;
        if !blob.is_empty() {
            return Err(ClientError::BadAnswer(format!(
                "publicKey: {} bytes after the key",
                blob.len()
            )));
        }
        if public_key.algorithm().as_str() != answer.key_type {
            return Err(ClientError::BadAnswer(format!(
                "keyType `{}` but the key is {}",
                answer.key_type,
                public_key.algorithm()
            )));
        }
        Ok(public_key)
    }

    /// Revokes certificates of the service's key `key` through its ledger: `serials`, and
    /// every certificate with `key_id` or naming `principal` (each when not empty).
    ///
    /// # Errors
    /// [`ClientError::Refused`] with the service's reason (`PERMISSION_DENIED` when the
    /// caller's policy does not allow revoking, `NOT_FOUND` for serials the ledger does not
    /// hold, in which case nothing was revoked).
    pub async fn revoke(
        &mut self,
        key: &str,
        serials: &[u64],
        key_id: &str,
        principal: &str,
        reason: &str,
    ) -> Result<RevokeResponse, ClientError> {
        let request = self.request(RevokeRequest {
            key: key.to_owned(),
            serials: serials.to_vec(),
            key_id: key_id.to_owned(),
            principal: principal.to_owned(),
            reason: reason.to_owned(),
        });
        Ok(self.revocation.revoke(request).await?.into_inner())
    }

    /// The service's current KRL for its key `key`, checked: it parses, and when `ca` is
    /// given it revokes only certificates of that CA key.
    ///
    /// # Errors
    /// [`ClientError::Refused`] with the service's reason; [`ClientError::BadAnswer`] for a
    /// KRL that does not parse or names another CA.
    pub async fn krl(
        &mut self,
        key: &str,
        ca: Option<&KeyData>,
    ) -> Result<(kmssh_pki::krl::Krl, Vec<u8>), ClientError> {
        let request = self.request(GetKrlRequest {
            key: key.to_owned(),
        });
        let answer = self.revocation.get_krl(request).await?.into_inner();
        let krl = kmssh_pki::krl::Krl::from_bytes(&answer.krl)
            .map_err(|e| ClientError::BadAnswer(format!("krl: {e}")))?;
        if krl.version != answer.krl_version {
            return Err(ClientError::BadAnswer(format!(
                "krl_version {} but the KRL says {}",
                answer.krl_version, krl.version
            )));
        }
        if let Some(ca) = ca {
            let blob = kmssh_pki::ssh_key::encoding::Encode::encode_vec(ca)
                .map_err(|e| ClientError::BadAnswer(format!("CA key: {e}")))?;
            if krl
                .certificate_scopes()
                .any(|scope| scope != Some(blob.as_slice()))
            {
                return Err(ClientError::BadAnswer(
                    "the KRL revokes certificates of another CA".into(),
                ));
            }
        }
        Ok((krl, answer.krl))
    }

    /// Sends `csr` to be signed by `key` and returns the certificate, after checking that
    /// it certifies the requested key for the requested principals and type, and that
    /// `ca` (when given; see [`Client::certificate_authority`]) signed it.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn sign(
        &mut self,
        key: &str,
        csr: &CertificateSigningRequest,
        ca: Option<&KeyData>,
    ) -> Result<Certificate, ClientError> {
        let payload = csr
            .to_proto()
            .map_err(|e| ClientError::Options(format!("the request: {e}")))?;
        let request = self.request(SignCertificateRequest::new(self.provider, key, payload));
        let answer = self.inner.sign_certificate(request).await?.into_inner();
        let certificate = Certificate::from_bytes(&answer.certificate)
            .map_err(|e| ClientError::BadAnswer(format!("certificate: {e}")))?;
        let fields = certificate.as_ssh_key();
        if fields.algorithm().to_certificate_type() != answer.certificate_type {
            return Err(ClientError::BadAnswer(format!(
                "certificateType `{}` but the certificate is {}",
                answer.certificate_type,
                fields.algorithm().to_certificate_type()
            )));
        }
        if fields.public_key() != &csr.public_key {
            return Err(ClientError::BadAnswer("it certifies another key".into()));
        }
        if certificate.cert_type() != csr.cert_type {
            return Err(ClientError::BadAnswer(
                "it is not the certificate type asked for".into(),
            ));
        }
        if !csr.principals.is_empty() && fields.valid_principals() != csr.principals.as_slice() {
            return Err(ClientError::BadAnswer(format!(
                "principals {:?}, asked for {:?}",
                fields.valid_principals(),
                csr.principals
            )));
        }
        if let Some(ca) = ca {
            let options = VerifyOptions {
                at: Some(fields.valid_after()),
                known_critical_options: fields
                    .critical_options()
                    .keys()
                    .filter(|name| name.contains('@'))
                    .cloned()
                    .collect(),
                ..VerifyOptions::default()
            };
            certificate.verify(ca, &options).map_err(|e| {
                ClientError::BadAnswer(format!("does not verify against the CA: {e}"))
            })?;
        }
        Ok(certificate)
    }
}
