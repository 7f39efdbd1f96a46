//! Revocation through the service: a caller whose policy allows it revokes certificates
//! the ledger holds (by serial, key id, principal); every caller granted the key fetches
//! the KRL, which `ssh-keygen -Q` reads as the ledger says.

#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::Command;

use kmssh_backend_local as _;
use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{Certificate, CertificateType, unix_now};
use kmssh_server::ClientError;
use server::{ALICE, Running, subject, token_hash, two_callers_config};
use tonic::Code;

const SECURITY: &str = "security-token-5555555555";

/// The two callers' service (alice issues from `user-ca`), with a third caller,
/// `security`, whose policy only revokes.
fn config(dir: &Path) -> String {
    two_callers_config(
        dir,
        &format!(
            r#"
[[caller]]
name = "security"
policy = "revokers"
token_sha256 = "{security}"

[policy.revokers]
keys = ["user-ca"]
certificate_types = ["user"]
principals = ["nobody"]
max_validity = "1m"
revoke = true
"#,
            security = token_hash(SECURITY),
        ),
    )
}

fn request(key_id: &str, principal: &str) -> CertificateSigningRequest {
    let now = unix_now();
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: key_id.into(),
        serial: 0,
        principals: vec![principal.to_owned()],
        valid_after: now,
        valid_before: now + 3600,
        public_key: subject(),
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `ssh-keygen -Q -f KRL CERT`: whether OpenSSH calls the certificate revoked.
fn ssh_keygen_revoked(dir: &Path, krl: &[u8], certificate: &Certificate) -> bool {
    let krl_path = dir.join("service.krl");
    std::fs::write(&krl_path, krl).expect("write KRL");
    let cert_path = dir.join("check-cert.pub");
    std::fs::write(&cert_path, certificate.cert_string("check") + "\n").expect("write cert");
    let out = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl_path)
        .arg(&cert_path)
        .output()
        .expect("ssh-keygen -Q");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let revoked = text.contains("REVOKED");
    assert_eq!(revoked, !out.status.success(), "{text}");
    revoked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_through_the_ledger_feeds_the_served_krl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(dir.path(), &config(dir.path())).await;
    let mut alice = running.client(Some(ALICE)).await;
    let ca = alice.certificate_authority("user-ca").await.expect("CA");
    let mut issued = Vec::new();
    for (key_id, principal) in [
        ("alice-laptop", "alice"),
        ("leaked", "dev-a"),
        ("leaked", "dev-b"),
        ("alice-ci", "dev-c"),
        ("alice-spare", "dev-c"),
    ] {
        let certificate = alice
            .sign("user-ca", &request(key_id, principal), Some(&ca))
            .await
            .expect("certificate");
        issued.push(certificate);
    }
    let serial = |i: usize| issued[i].as_ssh_key().serial();

    // Issuing does not imply revoking.
    let (code, message) = refused(alice.revoke("user-ca", &[serial(0)], "", "", "").await);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("policy rule `revoke`"), "{message}");

    let mut security = running.client(Some(SECURITY)).await;
    let answer = security
        .revoke("user-ca", &[serial(0)], "", "", "laptop stolen")
        .await
        .expect("revoke by serial");
    assert_eq!(answer.revoked, vec![serial(0)]);
    assert_eq!(answer.krl_version, 1);
    let answer = security
        .revoke("user-ca", &[], "leaked", "", "key leaked")
        .await
        .expect("revoke by key id");
    assert_eq!(answer.revoked, vec![serial(1), serial(2)]);
    assert_eq!(answer.krl_version, 3);
    let answer = security
        .revoke("user-ca", &[serial(0)], "", "", "")
        .await
        .expect("again");
    assert!(answer.revoked.is_empty());
    assert_eq!(answer.already_revoked, vec![serial(0)]);
    assert_eq!(answer.krl_version, 3);

    // A serial the ledger does not hold: nothing is revoked, not even the good one.
    let (code, message) = refused(
        security
            .revoke("user-ca", &[serial(3), 999_999], "", "", "")
            .await,
    );
    assert_eq!(code, Code::NotFound, "{message}");
    assert!(message.contains("999999"), "{message}");
    let (code, _) = refused(security.revoke("user-ca", &[], "", "", "").await);
    assert_eq!(code, Code::InvalidArgument);
    let (code, _) = refused(
        security
            .revoke("user-ca", &[], "", "nobody-had-it", "")
            .await,
    );
    assert_eq!(code, Code::NotFound);
    let (code, _) = refused(security.revoke("host-ca", &[1], "", "", "").await);
    assert_eq!(code, Code::PermissionDenied);

    // Every caller granted the key reads the KRL; OpenSSH agrees with the ledger.
    let (krl, bytes) = alice.krl("user-ca", Some(&ca)).await.expect("KRL");
    assert_eq!(krl.version, 3);
    for (i, certificate) in issued.iter().enumerate() {
        let revoked = i < 3;
        assert_eq!(
            krl.check_certificate(certificate).is_some(),
            revoked,
            "certificate {i} by our reader"
        );
        assert_eq!(
            ssh_keygen_revoked(dir.path(), &bytes, certificate),
            revoked,
            "certificate {i} by ssh-keygen -Q"
        );
    }
    let (code, _) = refused(alice.krl("host-ca", None).await);
    assert_eq!(code, Code::PermissionDenied);

    // Revoking by principal reaches the rest.
    let answer = security
        .revoke("user-ca", &[], "", "dev-c", "")
        .await
        .expect("revoke by principal");
    assert_eq!(answer.revoked, vec![serial(3), serial(4)]);
    let (krl, _) = security.krl("user-ca", Some(&ca)).await.expect("KRL");
    assert_eq!(krl.version, 5);
    assert!(issued.iter().all(|c| krl.check_certificate(c).is_some()));
    running.stop().await.expect("stops");

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    let revoked_lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|l| l["event"] == "revoked")
        .collect();
    assert_eq!(revoked_lines.len(), 4, "{audit}");
    assert_eq!(revoked_lines[0]["reason"], "laptop stolen");
    assert_eq!(revoked_lines[0]["caller"], "security");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"rule\":\"revoke\"") && l.contains("\"caller\":\"alice\"")),
        "{audit}"
    );
}
