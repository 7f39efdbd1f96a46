//! Python gRPC clients against the running service: stubs generated from `server/proto` with
//! grpcio-tools, and paramiko-cloud 2.0.0's own shipped stubs and CSR builder (the client
//! contract that exists in the wild). Their certificates are judged by `ssh-keygen` and
//! verified against the CA in Rust.

#[path = "support/python.rs"]
mod python;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kmssh_backend_local as _;
use kmssh_pki::ssh_key::PublicKey;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{Certificate, CertificateType, VerifyOptions};
use kmssh_server::ledger::{Ledger, LedgerFilter};
use serde_json::Value;
use server::{ALICE, CI, HOST_ALIAS, Running, SUBJECT, subject, two_callers_config};

/// Bound on one Python client run (interpreter start, grpc import, a few calls).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on one `ssh-keygen` run.
const SSH_KEYGEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Generated stubs (`rpc_pb2`, `rpc_pb2_grpc`, `csr_pb2`) and a client on them: the CA, then a
/// user certificate, printed as one JSON object of OpenSSH lines.
const GENERATED_CLIENT: &str = r#"
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
import grpc
import csr_pb2, rpc_pb2, rpc_pb2_grpc

address, token, key, subject = sys.argv[2:6]
kind, blob = subject.split()[:2]
blob = base64.b64decode(blob)
# The CSR carries the key blob after its leading type string.
length = int.from_bytes(blob[:4], "big")
metadata = [("authorization", "Bearer " + token)]
with grpc.insecure_channel(address) as channel:
    grpc.channel_ready_future(channel).result(timeout=20)
    stub = rpc_pb2_grpc.SignerStub(channel)
    ca = stub.GetCertificateAuthority(
        rpc_pb2.GetCertificateAuthorityRequest(provider=rpc_pb2.AWS, kmsKeyId=key),
        metadata=metadata, timeout=20)
    now = int(time.time())
    csr = csr_pb2.CSR(
        type=csr_pb2.CSR.USER, keyId="python-generated", principals=["alice", "dev-python"],
        validAfter=now, validBefore=now + 3600, publicKeyType=kind,
        publicKey=blob[4 + length:],
        extensions=[csr_pb2.CSR.ExtensionValue(type=csr_pb2.CSR.PERMIT_PTY, value="")])
    answer = stub.SignCertificate(
        rpc_pb2.CloudCertificateSigningRequest(
            provider=rpc_pb2.AWS, kmsKeyId=key, signingRequestPayload=csr),
        metadata=metadata, timeout=20)
print(json.dumps({
    "ca": ca.keyType + " " + base64.b64encode(ca.publicKey).decode(),
    "certificate": answer.certificateType + " "
        + base64.b64encode(answer.certificate).decode() + " python",
}))
"#;

/// paramiko-cloud 2.0.0 as its users call it: its shipped stubs, its `CertificateSigningRequest`
/// over a paramiko public key, a user certificate by key name and a host certificate by the
/// AWS key ARN (provider AWS). paramiko then loads each certificate onto the key.
const PARAMIKO_CLOUD_CLIENT: &str = r#"
import base64, datetime, json, sys
import grpc, paramiko
from paramiko_cloud.protobuf import csr_pb2, rpc_pb2, rpc_pb2_grpc
from paramiko_cloud.pki import (CertificateExtensions, CertificateParameters,
    CertificateSigningRequest, CertificateType)

address, user_token, host_token, subject, host_key = sys.argv[1:6]
kind, blob = subject.split()[:2]
public_key = paramiko.Ed25519Key(data=base64.b64decode(blob))

def csr(**parameters):
    proto = CertificateSigningRequest(public_key, CertificateParameters(**parameters)).to_proto()
    assert isinstance(proto, csr_pb2.CSR)
    return proto

requests = [
    ("user", "user-ca", user_token, csr(
        valid_for=datetime.timedelta(hours=1), type=CertificateType.USER,
        key_id="paramiko-cloud-user", principals=["alice", "dev-paramiko"],
        extensions={CertificateExtensions.PERMIT_PTY: "",
                    CertificateExtensions.PERMIT_AGENT_FORWARDING: ""})),
    ("host", host_key, host_token, csr(
        valid_for=datetime.timedelta(days=1), type=CertificateType.HOST,
        key_id="web-01", principals=["web-01.example.com"])),
]
with grpc.insecure_channel(address) as channel:
    grpc.channel_ready_future(channel).result(timeout=20)
    stub = rpc_pb2_grpc.SignerStub(channel)
    for label, key, token, request in requests:
        metadata = [("authorization", "Bearer " + token)]
        ca = stub.GetCertificateAuthority(
            rpc_pb2.GetCertificateAuthorityRequest(provider=rpc_pb2.AWS, kmsKeyId=key),
            metadata=metadata, timeout=20)
        answer = stub.SignCertificate(
            rpc_pb2.CloudCertificateSigningRequest(
                provider=rpc_pb2.AWS, kmsKeyId=key, signingRequestPayload=request),
            metadata=metadata, timeout=20)
        line = (answer.certificateType + " "
                + base64.b64encode(answer.certificate).decode() + " " + label)
        holder = paramiko.Ed25519Key(data=base64.b64decode(blob))
        holder.load_certificate(line)
        assert holder.public_blob.key_type == "ssh-ed25519-cert-v01@openssh.com"
        print(json.dumps({
            "label": label,
            "ca": ca.keyType + " " + base64.b64encode(ca.publicKey).decode(),
            "certificate": line,
        }))
"#;

/// Refusals as a Python client sees them: a wrong token, no token, and a CSR carrying a field
/// the contract does not have (protobuf keeps unknown fields and sends them on); then a good
/// request on the same channel. Prints the status code names.
const REFUSED_CLIENT: &str = r#"
import base64, json, sys, time
import grpc, paramiko
from paramiko_cloud.protobuf import csr_pb2, rpc_pb2, rpc_pb2_grpc
from paramiko_cloud.pki import CertificateParameters, CertificateSigningRequest

address, token, subject = sys.argv[1:4]
kind, blob = subject.split()[:2]
good = CertificateSigningRequest(
    paramiko.Ed25519Key(data=base64.b64decode(blob)),
    CertificateParameters(principals=["alice"])).to_proto()
with_unknown = csr_pb2.CSR()
# Field 21, varint 1: not in the contract.
with_unknown.ParseFromString(good.SerializeToString() + b"\xa8\x01\x01")

def call(metadata, csr):
    request = rpc_pb2.CloudCertificateSigningRequest(
        provider=rpc_pb2.AWS, kmsKeyId="user-ca", signingRequestPayload=csr)
    try:
        stub.SignCertificate(request, metadata=metadata, timeout=20)
        return {"code": "OK", "details": ""}
    except grpc.RpcError as error:
        return {"code": error.code().name, "details": error.details()}

with grpc.insecure_channel(address) as channel:
    grpc.channel_ready_future(channel).result(timeout=20)
    stub = rpc_pb2_grpc.SignerStub(channel)
    bearer = [("authorization", "Bearer " + token)]
    print(json.dumps({
        "wrong_token": call([("authorization", "Bearer not-" + token)], good),
        "no_token": call([], good),
        "unknown_field": call(bearer, with_unknown),
        "unknown_field_kept": len(with_unknown.SerializeToString()) > len(good.SerializeToString()),
        "good_after": call(bearer, good),
    }))
"#;

/// The venv's python, made on first use (blocking work off the runtime's threads).
async fn python() -> PathBuf {
    tokio::task::spawn_blocking(python::python)
        .await
        .expect("venv install task")
}

/// Runs `script` (written into `dir`) with `args`; its stdout parsed as JSON lines.
async fn run_script(
    python: &Path,
    dir: &Path,
    name: &str,
    script: &str,
    args: &[&str],
) -> Vec<Value> {
    let path = dir.join(name);
    std::fs::write(&path, script).expect("write the script");
    let mut command = Command::new(python);
    command.arg(&path).args(args).current_dir(dir);
    let out = tokio::task::spawn_blocking(move || python::run(&mut command, PYTHON_TIMEOUT))
        .await
        .expect("python task");
    assert!(out.status.success(), "{name}: {}", python::describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {value}"))
}

/// Checks an OpenSSH certificate line with `ssh-keygen -L` (principals, and the signing CA's
/// fingerprint is `ca_line`'s) and verifies its signature against `ca_line` in Rust. Returns
/// the certificate.
fn judge(
    dir: &Path,
    name: &str,
    ca_line: &str,
    cert_line: &str,
    principals: &[&str],
) -> Certificate {
    let ca = PublicKey::from_openssh(ca_line)
        .unwrap_or_else(|e| panic!("CA line {ca_line}: {e}"))
        .key_data()
        .clone();
    let ca_path = dir.join(format!("{name}-ca.pub"));
    std::fs::write(&ca_path, format!("{ca_line}\n")).expect("write CA");
    let cert_path = dir.join(format!("{name}-cert.pub"));
    std::fs::write(&cert_path, format!("{cert_line}\n")).expect("write certificate");

    let listing = python::run(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&cert_path),
        SSH_KEYGEN_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    for principal in principals {
        assert!(
            text.contains(&format!("\n                {principal}\n")),
            "{principal}: {text}"
        );
    }
    let fingerprint = python::run(
        Command::new("ssh-keygen").arg("-l").arg("-f").arg(&ca_path),
        SSH_KEYGEN_TIMEOUT,
    );
    assert!(fingerprint.status.success());
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_owned();
    let signing_ca = text
        .lines()
        .find(|l| l.trim_start().starts_with("Signing CA:"))
        .expect("Signing CA line");
    assert!(
        signing_ca.contains(&fingerprint),
        "{signing_ca} vs {fingerprint}"
    );

    let certificate = Certificate::from_openssh(cert_line).expect("parse the certificate");
    let fields = certificate.as_ssh_key();
    assert_eq!(fields.valid_principals(), principals);
    assert_eq!(fields.public_key(), &subject());
    certificate
        .verify(
            &ca,
            &VerifyOptions {
                at: Some(fields.valid_after()),
                ..VerifyOptions::default()
            },
        )
        .expect("the certificate verifies against the CA");
    certificate
}

async fn rust_ca(running: &Running, token: &str, key: &str) -> KeyData {
    running
        .client(Some(token))
        .await
        .certificate_authority(key)
        .await
        .expect("CA through the Rust client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_on_stubs_generated_from_the_proto_gets_a_certificate() {
    let python = python().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stubs = dir.path().join("stubs");
    std::fs::create_dir(&stubs).expect("stubs dir");
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let mut protoc = Command::new(&python);
    protoc
        .args(["-m", "grpc_tools.protoc"])
        .arg("-I")
        .arg(&proto)
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .args(["rpc.proto", "csr.proto"]);
    let out = tokio::task::spawn_blocking(move || python::run(&mut protoc, PYTHON_TIMEOUT))
        .await
        .expect("protoc task");
    assert!(out.status.success(), "protoc: {}", python::describe(&out));
    for stub in ["rpc_pb2.py", "rpc_pb2_grpc.py", "csr_pb2.py"] {
        assert!(stubs.join(stub).is_file(), "{stub} generated");
    }

    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let address = running.address.to_string();
    let answers = run_script(
        &python,
        dir.path(),
        "generated_client.py",
        GENERATED_CLIENT,
        &[
            stubs.to_str().expect("UTF-8 path"),
            &address,
            ALICE,
            "user-ca",
            SUBJECT,
        ],
    )
    .await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    let ca_line = text(&answers[0], "ca");
    let certificate = judge(
        dir.path(),
        "generated",
        ca_line,
        text(&answers[0], "certificate"),
        &["alice", "dev-python"],
    );
    assert_eq!(
        PublicKey::from_openssh(ca_line).expect("CA").key_data(),
        &rust_ca(&running, ALICE, "user-ca").await,
        "Python and Rust clients see the same CA"
    );
    let fields = certificate.as_ssh_key();
    assert_eq!(certificate.cert_type(), CertificateType::User);
    assert_eq!(fields.key_id(), "python-generated");
    assert_ne!(fields.serial(), 0);
    assert_eq!(
        fields.extensions().keys().collect::<Vec<_>>(),
        ["permit-pty"]
    );
    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_cloud_2_0_0_shipped_stubs_and_csr_get_user_and_host_certificates() {
    let python = python().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let address = running.address.to_string();
    let answers = run_script(
        &python,
        dir.path(),
        "paramiko_cloud_client.py",
        PARAMIKO_CLOUD_CLIENT,
        &[&address, ALICE, CI, SUBJECT, HOST_ALIAS],
    )
    .await;
    assert_eq!(answers.len(), 2, "{answers:?}");

    let user = judge(
        dir.path(),
        "user",
        text(&answers[0], "ca"),
        text(&answers[0], "certificate"),
        &["alice", "dev-paramiko"],
    );
    assert_eq!(text(&answers[0], "label"), "user");
    assert_eq!(user.cert_type(), CertificateType::User);
    assert_eq!(user.as_ssh_key().key_id(), "paramiko-cloud-user");
    assert_eq!(
        user.as_ssh_key().extensions().keys().collect::<Vec<_>>(),
        ["permit-agent-forwarding", "permit-pty"]
    );
    let fields = user.as_ssh_key();
    assert_eq!(fields.valid_before() - fields.valid_after(), 3600);

    let host = judge(
        dir.path(),
        "host",
        text(&answers[1], "ca"),
        text(&answers[1], "certificate"),
        &["web-01.example.com"],
    );
    assert_eq!(text(&answers[1], "label"), "host");
    assert_eq!(host.cert_type(), CertificateType::Host);
    assert_eq!(
        PublicKey::from_openssh(text(&answers[1], "ca"))
            .expect("CA")
            .key_data(),
        &rust_ca(&running, CI, "host-ca").await,
        "the ARN names host-ca"
    );
    assert_ne!(user.as_ssh_key().serial(), 0);
    assert_ne!(host.as_ssh_key().serial(), 0);
    running.stop().await.expect("stop");

    let ledger = Ledger::open(&format!("sqlite:{}/ledger.db", dir.path().display()))
        .await
        .expect("ledger");
    let records = ledger.list(&LedgerFilter::default()).await.expect("list");
    let mut callers: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.caller.as_str(), r.ca_key.as_str()))
        .collect();
    callers.sort_unstable();
    assert_eq!(callers, [("alice", "user-ca"), ("ci", "host-ca")]);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_refusals_are_unauthenticated_and_invalid_argument() {
    let python = python().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &two_callers_config(dir.path(), "")).await;
    let address = running.address.to_string();
    let answers = run_script(
        &python,
        dir.path(),
        "refused_client.py",
        REFUSED_CLIENT,
        &[&address, ALICE, SUBJECT],
    )
    .await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer = &answers[0];
    assert_eq!(
        text(&answer["wrong_token"], "code"),
        "UNAUTHENTICATED",
        "{answer}"
    );
    assert!(
        text(&answer["wrong_token"], "details").contains("no caller matches the bearer token"),
        "{answer}"
    );
    assert_eq!(
        text(&answer["no_token"], "code"),
        "UNAUTHENTICATED",
        "{answer}"
    );
    assert_eq!(answer["unknown_field_kept"], Value::Bool(true), "{answer}");
    assert_eq!(
        text(&answer["unknown_field"], "code"),
        "INVALID_ARGUMENT",
        "{answer}"
    );
    assert!(
        text(&answer["unknown_field"], "details").contains("signingRequestPayload"),
        "{answer}"
    );
    assert_eq!(text(&answer["good_after"], "code"), "OK", "{answer}");
    running.stop().await.expect("stop");

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let events: Vec<(String, String)> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default().to_owned(),
                v["rule"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let events: Vec<(&str, &str)> = events
        .iter()
        .map(|(e, r)| (e.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("refused", "authentication"),
            ("refused", "authentication"),
            ("refused", "request"),
            ("issued", ""),
        ],
        "the unknown field is refused once the caller is known, and recorded: {audit}"
    );
}
