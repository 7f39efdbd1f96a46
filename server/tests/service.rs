//! The service end to end over 127.0.0.1: the Rust client against a running server with
//! local CA keys, judged by `ssh-keygen`, the ledger and the audit log.

#[path = "support/server.rs"]
mod server;

use std::process::Command;
use std::time::Duration;

use kmssh_backend_local as _;
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{CertificateType, unix_now};
use kmssh_server::ledger::{Ledger, LedgerFilter};
use kmssh_server::wire::proto::signer_client::SignerClient;
use kmssh_server::wire::{CloudCertificateSigningResponse, CloudProvider, SignCertificateRequest};
use kmssh_server::{Client, ClientError, ClientOptions};
use prost::Message;
use server::{ALICE, CI, Running, subject, two_callers_config};
use tonic::Code;

fn user_request(principals: &[&str], hours: u64) -> CertificateSigningRequest {
    let now = unix_now();
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: "alice@example.com".into(),
        serial: 0,
        principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        valid_after: now,
        valid_before: now + hours * 3600,
        public_key: subject(),
    }
}

fn refused(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_caller_gets_a_certificate_ssh_keygen_lists_and_the_ledger_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let mut client = running.client(Some(ALICE)).await;
    let ca = client.certificate_authority("user-ca").await.expect("CA");
    let certificate = client
        .sign(
            "user-ca",
            &user_request(&["dev-alice", "alice"], 1),
            Some(&ca),
        )
        .await
        .expect("certificate");
    let fields = certificate.as_ssh_key();
    assert_eq!(fields.valid_principals(), ["dev-alice", "alice"]);
    assert_ne!(fields.serial(), 0, "the service assigns the serial");

    let path = dir.path().join("id-cert.pub");
    std::fs::write(&path, certificate.cert_string("alice")).expect("write");
    let out = Command::new("ssh-keygen")
        .arg("-Lf")
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listing} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing.contains("dev-alice"), "{listing}");
    assert!(
        listing.contains(&format!("Serial: {}", fields.serial())),
        "{listing}"
    );

    // A second certificate gets another serial.
    let second = client
        .sign("user-ca", &user_request(&["alice"], 1), Some(&ca))
        .await
        .expect("second");
    assert_ne!(second.as_ssh_key().serial(), fields.serial());
    running.stop().await.expect("clean stop");

    let ledger = Ledger::open(&format!("sqlite:{}/ledger.db", dir.path().display()))
        .await
        .expect("ledger");
    let records = ledger.list(&LedgerFilter::default()).await.expect("list");
    assert_eq!(records.len(), 2);
    let first = records
        .iter()
        .find(|r| r.serial == fields.serial())
        .expect("the first certificate is in the ledger");
    assert_eq!(first.caller, "alice");
    assert_eq!(first.ca_key, "user-ca");
    assert_eq!(first.principals, ["dev-alice", "alice"]);
    let blob = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(blob(&first.certificate), blob(&certificate.cert_string("")));
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let issued: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .filter(|v: &serde_json::Value| v["event"] == "issued")
        .collect();
    assert_eq!(issued.len(), 2, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_ungranted_callers_are_refused_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let request = user_request(&["alice"], 1);

    let (code, message) = refused(
        running
            .client(None)
            .await
            .sign("user-ca", &request, None)
            .await,
    );
    assert_eq!(code, Code::Unauthenticated, "{message}");
    let (code, message) = refused(
        running
            .client(Some("not-a-token"))
            .await
            .sign("user-ca", &request, None)
            .await,
    );
    assert_eq!(code, Code::Unauthenticated, "{message}");

    // ci may use host-ca only; an unknown key gets the same answer as a key not granted.
    let mut ci = running.client(Some(CI)).await;
    let (code, not_granted) = refused(ci.sign("user-ca", &request, None).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(
        not_granted.contains("not granted to caller `ci`"),
        "{not_granted}"
    );
    let (code, unknown) = refused(ci.sign("no-such-key", &request, None).await);
    assert_eq!(code, Code::PermissionDenied);
    assert_eq!(
        unknown.replace("no-such-key", "K"),
        not_granted.replace("user-ca", "K")
    );
    let (code, _) = refused(ci.certificate_authority("user-ca").await);
    assert_eq!(code, Code::PermissionDenied);
    running.stop().await.expect("stop");

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let rules: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .filter(|v| v["event"] == "refused")
        .map(|v| v["rule"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        rules,
        ["authentication", "authentication", "keys", "keys", "keys"],
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals_name_the_rule_and_validity_is_clamped_only_when_unrequested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let mut alice = running.client(Some(ALICE)).await;
    let ca = alice.certificate_authority("user-ca").await.expect("CA");

    let (code, message) = refused(
        alice
            .sign("user-ca", &user_request(&["root"], 1), None)
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("policy rule `principals`"), "{message}");
    assert!(message.contains("root"), "{message}");

    let (code, message) = refused(
        alice
            .sign("user-ca", &user_request(&["alice"], 9), None)
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("policy rule `max_validity`"), "{message}");

    let mut host = user_request(&["dev-x"], 1);
    host.cert_type = CertificateType::Host;
    let (code, message) = refused(alice.sign("user-ca", &host, None).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(
        message.contains("policy rule `certificate_types`"),
        "{message}"
    );

    let mut serial = user_request(&["alice"], 1);
    serial.serial = 42;
    let (code, message) = refused(alice.sign("user-ca", &serial, None).await);
    assert_eq!(code, Code::PermissionDenied);
    assert!(message.contains("policy rule `serial`"), "{message}");

    // No end asked for: the policy's maximum, from a start slightly in the past.
    let mut open = user_request(&["alice"], 1);
    open.valid_after = 0;
    open.valid_before = 0;
    let before = unix_now();
    let clamped = alice
        .sign("user-ca", &open, Some(&ca))
        .await
        .expect("clamped");
    let fields = clamped.as_ssh_key();
    assert!(fields.valid_after() <= before && fields.valid_after() + 120 >= before);
    assert_eq!(fields.valid_before() - fields.valid_after(), 8 * 3600);
    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_cloud_clients_name_a_key_by_provider_id_with_the_right_provider() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let alias = "arn:aws:kms:eu-west-1:111122223333:alias/host-ca";
    let mut host = user_request(&["web-01.example.com"], 24);
    host.cert_type = CertificateType::Host;
    for (provider, ok) in [(CloudProvider::Aws, true), (CloudProvider::Gcp, false)] {
        let mut client = Client::connect(ClientOptions {
            server: running.url(),
            token: Some(CI.into()),
            provider: Some(provider),
            ..ClientOptions::default()
        })
        .await
        .expect("connect");
        let result = client.sign(alias, &host, None).await;
        if ok {
            result.expect("the ARN names host-ca for AWS");
        } else {
            assert_eq!(refused(result).0, Code::PermissionDenied);
        }
    }
    running.stop().await.expect("stop");
}

/// `CloudCertificateSigningRequest` with a field the contract does not have.
#[derive(Clone, PartialEq, Message)]
struct WithExtraField {
    #[prost(int32, tag = "1")]
    provider: i32,
    #[prost(string, tag = "2")]
    kms_key_id: String,
    #[prost(bytes = "vec", tag = "3")]
    payload: Vec<u8>,
    #[prost(string, tag = "9")]
    extra: String,
}

async fn raw_call<M: Message + Send + Sync + 'static>(
    address: std::net::SocketAddr,
    message: M,
) -> Result<CloudCertificateSigningResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ALICE}").parse().expect("header"),
    );
    grpc.unary(
        request,
        "/ssh_cert.Signer/SignCertificate".parse().expect("path"),
        tonic_prost::ProstCodec::<M, CloudCertificateSigningResponse>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unknown_field_requests_are_invalid_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(
        dir.path(),
        &two_callers_config(dir.path(), "[limits]\nmax_request_bytes = 4096\n"),
    )
    .await;
    let good = user_request(&["alice"], 1).to_proto().expect("encode");

    let extra = WithExtraField {
        provider: 0,
        kms_key_id: "user-ca".into(),
        payload: good.clone(),
        extra: "surprise".into(),
    };
    let status = raw_call(running.address, extra)
        .await
        .expect_err("unknown field");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("unknown field number 9"),
        "{status:?}"
    );

    let mut csr_with_unknown = good.clone();
    csr_with_unknown.extend_from_slice(&[0xa8, 0x01, 0x01]); // field 21, varint 1
    let status = raw_call(
        running.address,
        SignCertificateRequest::new(CloudProvider::Aws, "user-ca", csr_with_unknown),
    )
    .await
    .expect_err("unknown CSR field");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("signingRequestPayload"),
        "{status:?}"
    );

    let status = raw_call(
        running.address,
        SignCertificateRequest::new(CloudProvider::Aws, "user-ca", vec![0x0a, 0x7f, 0x01]),
    )
    .await
    .expect_err("garbage CSR");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let mut big = user_request(&["alice"], 1);
    big.key_id = "k".repeat(6000);
    let status = raw_call(
        running.address,
        SignCertificateRequest::new(
            CloudProvider::Aws,
            "user-ca",
            big.to_proto().expect("encode"),
        ),
    )
    .await
    .expect_err("oversized");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("4096-byte limit"), "{status:?}");

    // Still serving.
    let answer = raw_call(
        running.address,
        SignCertificateRequest::new(CloudProvider::Aws, "user-ca", good),
    )
    .await
    .expect("a good request after the bad ones");
    assert_eq!(answer.certificate_type, "ssh-ed25519-cert-v01@openssh.com");
    running.stop().await.expect("stop");

    // Each refusal is recorded with the caller who sent it and the rule.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let refusals: Vec<(String, String)> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .filter(|v| v["event"] == "refused")
        .map(|v| {
            (
                v["caller"].as_str().unwrap_or_default().to_owned(),
                v["rule"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("alice", "request"),
        ("alice", "request"),
        ("alice", "request"),
        ("alice", "request_size"),
    ]
    .map(|(c, r)| (c.to_owned(), r.to_owned()));
    assert_eq!(refusals, expected, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let channel = tonic::transport::Endpoint::from_shared(running.url())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ssh_cert.Signer".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // Reflection lists the contract, so grpcurl and friends can call it without the .proto.
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let ask = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = reflection
            .server_reflection_info(tokio_stream_once(ask))
            .await
            .expect("reflection")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("answer")
            .expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("not a service list: {answer:?}");
        };
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"ssh_cert.Signer"), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    }
    // The generated client is usable too, with the strict codec on its answers.
    let mut signer = SignerClient::new(channel);
    let mut request = tonic::Request::new(kmssh_server::wire::GetCertificateAuthorityRequest::new(
        CloudProvider::Aws,
        "user-ca",
    ));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ALICE}").parse().expect("header"),
    );
    let ca = signer
        .get_certificate_authority(request)
        .await
        .expect("CA")
        .into_inner();
    assert_eq!(ca.key_type, "ecdsa-sha2-nistp256");
    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_with_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text =
        two_callers_config(dir.path(), "").replace("policy = \"hosts\"", "policy = \"nope\"");
    let error = Running::try_start(dir.path(), &text)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("policy `nope` is not defined"), "{error}");
    let line = text
        .lines()
        .position(|l| l.contains("name = \"ci\""))
        .expect("line");
    assert!(error.contains(&format!("kmssh.toml:{}:", line)), "{error}");

    let text = two_callers_config(dir.path(), "")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let error = Running::try_start(dir.path(), &text)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("not a loopback address"), "{error}");

    let text = two_callers_config(dir.path(), "unknown_key = 1\n");
    let error = Running::try_start(dir.path(), &text)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("unknown field `unknown_key`"), "{error}");

    let text = two_callers_config(dir.path(), "").replace(
        "user-ca = \"local:ephemeral?type=ecdsa\"",
        "user-ca = { uri = \"local:ephemeral?type=ecdsa\", max_rate = 0 }",
    );
    let error = Running::try_start(dir.path(), &text)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("keys.user-ca.max_rate"), "{error}");
    let _ = Duration::ZERO;
}

/// A key with `max_rate` serves every request, spacing their signatures (the wait is
/// within the request timeout, so 20 concurrent requests at 50/s all succeed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_key_serves_every_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = two_callers_config(dir.path(), "").replace(
        "user-ca = \"local:ephemeral?type=ecdsa\"",
        "user-ca = { uri = \"local:ephemeral?type=ecdsa\", max_rate = 50 }",
    );
    let running = Running::start(dir.path(), &text).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut client = running.client(Some(ALICE)).await;
        tasks.spawn(async move {
            client
                .sign("user-ca", &user_request(&["dev-a"], 1), None)
                .await
                .expect("certificate")
                .as_ssh_key()
                .serial()
        });
    }
    let mut serials = std::collections::BTreeSet::new();
    while let Some(serial) = tasks.join_next().await {
        serials.insert(serial.expect("task"));
    }
    assert_eq!(serials.len(), 20);
    running.stop().await.expect("stops");
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter([item])
}
