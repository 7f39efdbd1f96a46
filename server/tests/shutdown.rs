//! Graceful shutdown: requests in flight when the stop signal comes either finish with a
//! certificate or fail with a retryable status, none hangs, and the service stops within its
//! grace period. The configuration keeps the request timeout inside the grace period (tonic
//! runs each connection as a task of its own, which a stop cannot cut), so a stalled
//! request ends by its timeout before the grace period does.

#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmssh_backend_local as _;
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{CertificateType, unix_now};
use kmssh_server::ledger::Ledger;
use kmssh_server::wire::proto::signer_client::SignerClient;
use kmssh_server::wire::{CloudCertificateSigningResponse, CloudProvider, SignCertificateRequest};
use server::{Running, subject, token_hash};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const TOKEN: &str = "fleet-token-0123456789";
/// Bound on one request, far above what a request takes: a request reaching it hangs.
const REQUEST_BOUND: Duration = Duration::from_secs(30);

fn config(dir: &Path, limits: &str) -> String {
    let dir = dir.display();
    format!(
        r#"
listen = "127.0.0.1:0"

[keys]
user-ca = "local:ephemeral?type=ed25519"

[ledger]
url = "sqlite:{dir}/ledger.db"

[audit]
path = "{dir}/audit.jsonl"

[[caller]]
name = "fleet"
policy = "fleet"
token_sha256 = "{token}"

[policy.fleet]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["node-*"]
max_validity = "1h"

[limits]
caller_requests_per_second = 1000000
caller_burst = 1000000
{limits}
"#,
        token = token_hash(TOKEN),
    )
}

fn sign_request(n: usize) -> tonic::Request<SignCertificateRequest> {
    let now = unix_now();
    let csr = CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: format!("node-{n}"),
        serial: 0,
        principals: vec![format!("node-{n}")],
        valid_after: now,
        valid_before: now + 600,
        public_key: subject(),
    };
    let mut request = tonic::Request::new(SignCertificateRequest::new(
        CloudProvider::Aws,
        "user-ca",
        csr.to_proto().expect("encode"),
    ));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    request
}

async fn channel(running: &Running) -> Channel {
    Endpoint::from_shared(running.url())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// A status tonic's client made from a failed connection, not one the service sent.
fn connection_level(status: &tonic::Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

fn audit_issued_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""event":"issued""#))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_stop_finish_or_fail_retryably_and_none_hangs() {
    const CONNECTIONS: usize = 10;
    const REQUESTS: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &config(dir.path(), "shutdown_grace = \"10s\"")).await;
    let mut channels = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        channels.push(channel(&running).await);
    }
    // The first half starts at once; the second half is released together with the stop
    // signal, once the first answer is back: so some requests are being served, some are
    // on the wire and some not yet sent when the service stops.
    let (go, released) = tokio::sync::watch::channel(false);
    let first_answer = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let mut client = SignerClient::new(channels[n % CONNECTIONS].clone());
        let mut released = released.clone();
        let first_answer = first_answer.clone();
        tasks.spawn(async move {
            if n >= REQUESTS / 2 {
                released
                    .wait_for(|go| *go)
                    .await
                    .expect("the test holds the sender");
            }
            let outcome =
                tokio::time::timeout(REQUEST_BOUND, client.sign_certificate(sign_request(n)))
                    .await
                    .map(|answer| answer.map(tonic::Response::into_inner));
            first_answer.notify_one();
            (n, outcome)
        });
    }
    tokio::time::timeout(REQUEST_BOUND, first_answer.notified())
        .await
        .expect("a first answer");
    go.send(true).expect("release the second half");
    let stopping = Instant::now();
    let stopped = running.stop().await;
    let stop_took = stopping.elapsed();

    let mut issued = 0;
    let mut retryable = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, outcome) = joined.expect("request task");
        let answer: Result<CloudCertificateSigningResponse, tonic::Status> =
            outcome.unwrap_or_else(|_| panic!("request {n} hung past {REQUEST_BOUND:?}"));
        match answer {
            Ok(answer) => {
                assert_eq!(answer.certificate_type, "ssh-ed25519-cert-v01@openssh.com");
                issued += 1;
            }
            Err(status) => {
                // The service's own answers while stopping are Unavailable or Cancelled;
                // a request the stop caught on the wire (GOAWAY, the connection closing
                // while it was being written) fails in tonic's client as Unknown or
                // Internal, with the transport error as its source.
                assert!(
                    matches!(status.code(), Code::Unavailable | Code::Cancelled)
                        || connection_level(&status),
                    "request {n}: {status:?}"
                );
                retryable.push(status.code());
            }
        }
    }
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for code in &retryable {
        *codes.entry(format!("{code:?}")).or_default() += 1;
    }
    eprintln!("stop took {stop_took:?}: {issued} issued, failed: {codes:?}");
    stopped.expect("the service stops cleanly, within its grace period");
    assert!(stop_took < Duration::from_secs(10), "{stop_took:?}");
    assert_eq!(issued + retryable.len(), REQUESTS);
    assert!(issued >= 1);

    // Every certificate the service recorded reached its client, and the other way round.
    let ledger = Ledger::open(&format!("sqlite:{}/ledger.db", dir.path().display()))
        .await
        .expect("ledger");
    assert_eq!(ledger.count_issued().await.expect("count"), issued as u64);
    ledger.close().await;
    assert_eq!(audit_issued_lines(dir.path()), issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_with_a_one_second_grace_stops_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(
        dir.path(),
        &config(
            dir.path(),
            "shutdown_grace = \"1s\"\nrequest_timeout = \"1s\"",
        ),
    )
    .await;
    // A connection that has served a request and stays open, idle.
    let channel = channel(&running).await;
    let mut client = SignerClient::new(channel.clone());
    client
        .sign_certificate(sign_request(1))
        .await
        .expect("a certificate");
    let stopping = Instant::now();
    running.stop().await.expect("clean stop");
    let took = stopping.elapsed();
    // Waiting out the grace period would have been ShutdownTimeout, not Ok.
    assert!(
        took < Duration::from_secs(3),
        "an idle service stops at once: {took:?}"
    );
    drop(channel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_ends_by_its_timeout_inside_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(
        dir.path(),
        &config(
            dir.path(),
            "shutdown_grace = \"3s\"\nrequest_timeout = \"1s\"",
        ),
    )
    .await;
    let channel = channel(&running).await;
    SignerClient::new(channel.clone())
        .sign_certificate(sign_request(1))
        .await
        .expect("a certificate");
    // A request whose message never comes: the service waits for it until the request
    // timeout, which the configuration keeps inside the grace period.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let mut stalled = tonic::Request::new(tonic::codegen::tokio_stream::pending::<
        SignCertificateRequest,
    >());
    stalled.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    let stalled = tokio::spawn(async move {
        grpc.client_streaming(
            stalled,
            "/ssh_cert.Signer/SignCertificate".parse().expect("path"),
            tonic_prost::ProstCodec::<SignCertificateRequest, CloudCertificateSigningResponse>::default(),
        )
        .await
    });
    // Let its headers reach the service.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = Instant::now();
    let stopped = running.stop().await;
    let took = stopping.elapsed();
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(
        took < Duration::from_millis(2900),
        "the stop ends with the stalled request, inside the grace period: {took:?}"
    );
    let outcome = tokio::time::timeout(REQUEST_BOUND, stalled)
        .await
        .expect("the stalled request ends")
        .expect("task");
    assert!(outcome.is_err(), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_longer_than_the_grace_period_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = Running::try_start(
        dir.path(),
        &config(
            dir.path(),
            "shutdown_grace = \"1s\"\nrequest_timeout = \"5s\"",
        ),
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(error.contains("limits.request_timeout"), "{error}");
    assert!(error.contains("could outlive the stop"), "{error}");
}
