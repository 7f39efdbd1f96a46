//! The hostile-input suite: generated certificates that a CA signed over bytes kmssh
//! would never write (or that were altered afterwards) must get the same verdict from
//! kmssh's verification (what `kmssh verify` runs), `ssh-keygen -L` and a real `sshd`;
//! mutated signing requests must be refused or issued exactly as they read.

use std::path::Path;

use base64ct::{Base64, Encoding as _};
use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_conformance::hostile::{self, Mutator, Verdict};
use kmssh_conformance::openssh::{self, SshLogin, Sshd, SshdConfig};
use kmssh_core::{KeySpec, KmsKey};
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{
    Certificate, CertificateSigningRequest, CertificateType, VerifyOptions, issue_at,
    parse_subject_key, pubkey_string, ssh_public_key, unix_now,
};

fn local_key() -> LocalKey {
    LocalKey::generate(
        KeySpec::Ecdsa(kmssh_core::Curve::P256),
        LocalOptions::default(),
    )
    .expect("a key")
}

fn subject_of(private_key: &Path) -> KeyData {
    let line = std::fs::read_to_string(openssh::pub_path(private_key)).expect("public key");
    parse_subject_key(&line).expect("subject")
}

fn write_certificate(dir: &Path, name: &str, key_type: &str, blob: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "{key_type}-cert-v01@openssh.com {}\n",
            Base64::encode_string(blob)
        ),
    )
    .expect("write certificate");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmssh_verify_agrees_with_ssh_keygen_and_sshd_on_every_hostile_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = local_key();
    let other_ca = local_key();
    let ca_key = ssh_public_key(ca.public_key());
    let client = openssh::keygen(dir.path(), "client", "ed25519", None).await;
    let subject = subject_of(&client);
    let host_key = openssh::keygen(dir.path(), "host", "ed25519", None).await;
    let host_line = std::fs::read_to_string(openssh::pub_path(&host_key)).expect("host key");
    let user = openssh::current_user();
    let now = unix_now();

    let cases = hostile::certificates(&ca, &other_ca, &subject, &user, now).await;
    let sshd = Sshd::start(&SshdConfig {
        dir: dir.path(),
        trusted_user_ca: &pubkey_string(ca.public_key(), "hostile-ca"),
        host_key: &host_key,
        host_certificate: None,
        revoked_keys: None,
        authorized_keys: None,
    });
    let known_hosts = format!("[127.0.0.1]:{} {}", sshd.port(), host_line.trim());

    let mut disagreements = Vec::new();
    let options = VerifyOptions {
        principal: Some(user.clone()),
        cert_type: Some(CertificateType::User),
        ..VerifyOptions::default()
    };
    for (i, case) in cases.iter().enumerate() {
        let path = write_certificate(
            dir.path(),
            &format!("case{i}-cert.pub"),
            subject.algorithm().as_str(),
            &case.blob,
        );
        let ours =
            Certificate::from_bytes(&case.blob).and_then(|cert| cert.verify(&ca_key, &options));
        // The text form `kmssh verify` reads must give the same verdict.
        let ours_text = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|line| Certificate::from_openssh(&line).map_err(|e| e.to_string()))
            .and_then(|cert| cert.verify(&ca_key, &options).map_err(|e| e.to_string()));
        let listed = openssh::run(
            tokio::process::Command::new("ssh-keygen")
                .arg("-L")
                .arg("-f")
                .arg(&path),
        )
        .await
        .status
        .success();
        let login = SshLogin {
            dir: dir.path(),
            port: sshd.port(),
            user: &user,
            identity: &client,
            certificate: Some(&path),
            known_hosts: &known_hosts,
            command: "true",
        }
        .run()
        .await
        .status
        .success();
        let expected = case.openssh == Verdict::Accept;
        let verdict = match &ours {
            Ok(()) => "accepted".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        eprintln!(
            "{:<70} sshd {:<6} ssh-keygen -L {:<6} kmssh {verdict}",
            case.name,
            if login { "accept" } else { "refuse" },
            if listed { "lists" } else { "fails" },
        );
        if login != expected {
            disagreements.push(format!(
                "{}: sshd {} (expected {:?})",
                case.name,
                if login { "accepted" } else { "refused" },
                case.openssh
            ));
        }
        match case.kmssh_stricter {
            None if ours.is_ok() != login => disagreements.push(format!(
                "{}: kmssh {verdict}, sshd login {login}",
                case.name
            )),
            Some(why) if ours.is_ok() => disagreements.push(format!(
                "{}: kmssh should refuse it ({why}) but {verdict}",
                case.name
            )),
            _ => {}
        }
        if ours_text.is_ok() != ours.is_ok() {
            disagreements.push(format!(
                "{}: the text form gives another verdict: {ours_text:?}",
                case.name
            ));
        }
        if !listed && ours.is_ok() {
            disagreements.push(format!(
                "{}: ssh-keygen -L refuses it, kmssh accepts it",
                case.name
            ));
        }
    }
    assert!(
        cases.iter().any(|c| c.openssh == Verdict::Accept),
        "the suite has certificates sshd accepts"
    );
    assert!(
        disagreements.is_empty(),
        "{}\n--- sshd log ---\n{}",
        disagreements.join("\n"),
        sshd.log_text()
    );
}

/// How many mutated requests are tried, and how many of the accepted ones are listed by
/// `ssh-keygen -L` (one process each).
const MUTATIONS: usize = 6000;
const LISTED: usize = 40;

#[tokio::test]
async fn mutated_requests_are_refused_or_issued_exactly_as_they_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = local_key();
    let ca_key = ssh_public_key(ca.public_key());
    let subject = ssh_public_key(local_key().public_key());
    let now = unix_now();
    let seed = hostile::seed_request(&subject, now);
    let mut mutator = Mutator::new(0x6b6d_7373_6800_0012);
    let (mut refused, mut issued, mut listed) = (0, 0, 0);
    for i in 0..MUTATIONS {
        let bytes = mutator.mutate(&seed);
        let Ok(request) = CertificateSigningRequest::from_proto(&bytes) else {
            refused += 1;
            continue;
        };
        let Ok(params) = request.to_parameters(true) else {
            refused += 1;
            continue;
        };
        let Ok(cert) = issue_at(&ca, &request.public_key, &params, now).await else {
            refused += 1;
            continue;
        };
        issued += 1;
        let inner = cert.as_ssh_key();
        assert_eq!(inner.public_key(), &request.public_key, "mutation {i}: key");
        assert_eq!(inner.key_id(), request.key_id, "mutation {i}: key id");
        assert_eq!(inner.serial(), request.serial, "mutation {i}: serial");
        assert_eq!(
            inner.valid_principals(),
            request.principals.as_slice(),
            "mutation {i}: principals"
        );
        assert_eq!(inner.valid_after(), request.valid_after, "mutation {i}");
        assert_eq!(inner.valid_before(), request.valid_before, "mutation {i}");
        assert_eq!(
            inner.extensions().len(),
            request.extensions.len(),
            "mutation {i}: extensions"
        );
        cert.verify(
            &ca_key,
            &VerifyOptions {
                at: Some(request.valid_after),
                known_critical_options: request
                    .critical_options
                    .iter()
                    .map(|o| o.name().to_owned())
                    .collect(),
                ..VerifyOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("mutation {i}: our own certificate does not verify: {e}"));
        if listed < LISTED {
            listed += 1;
            let path = write_certificate(
                dir.path(),
                &format!("mutant{i}-cert.pub"),
                request.public_key.algorithm().as_str(),
                cert.as_bytes(),
            );
            let listing = openssh::list_certificate(&path).await;
            assert_eq!(listing.key_id, request.key_id, "mutation {i}");
            assert_eq!(listing.principals, request.principals, "mutation {i}");
        }
    }
    eprintln!(
        "{MUTATIONS} mutated requests: {refused} refused, {issued} issued, {listed} listed by ssh-keygen"
    );
    assert_eq!(refused + issued, MUTATIONS);
    assert!(
        refused > 0 && issued > 0,
        "the mutations reach both outcomes"
    );
}
