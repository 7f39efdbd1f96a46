//! The shared conformance cases. Each takes an opened key and panics, with a message
//! saying what broke, when the backend does not behave. Every backend's test target runs
//! all of them, for every curve it offers; the fault cases ([`faults`]) run for every
//! fixture that can inject faults.

pub mod faults;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kmssh_core::{EcdsaSignature, ErrorKind, KmsKey};
use kmssh_pki::{
    Certificate, CertificateParameters, CriticalOption, Extension, VerifyOptions, cert_path_for,
    issue, parse_subject_key, pubkey_string, ssh_public_key, ssh_signature, unix_now,
};
use tokio::process::Command;

use crate::openssh::{
    self, SshLogin, Sshd, SshdConfig, expected_validity, keygen, list_certificate, pub_path, run,
    run_ok,
};

/// Signatures per curve in [`sign_verify_round_trips`]: enough that fixed-width `r` or
/// `s` with a leading zero byte (1 in 128 per signature on P-256/384) shows up many times.
pub const ROUND_TRIPS: usize = 2000;

/// An Ed25519 subject key for cases that need any subject.
pub const TEST_SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR";

/// Issues a user certificate for `alice` over [`TEST_SUBJECT`].
///
/// # Errors
/// Whatever issuing fails with (the key's error inside [`kmssh_pki::Error::Signing`]).
pub async fn issue_test_certificate(key: &dyn KmsKey) -> Result<Certificate, kmssh_pki::Error> {
    let mut params = CertificateParameters::user();
    params.principal("alice")?;
    issue(key, &parse_subject_key(TEST_SUBJECT)?, &params).await
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("scratch directory")
}

/// The public key is usable by OpenSSH: `ssh-keygen -l` reads our CA line and prints the
/// fingerprint we compute.
pub async fn public_key_matches_ssh_keygen(key: &dyn KmsKey) {
    let algorithm = key.algorithm();
    assert_eq!(key.public_key().algorithm(), algorithm);
    let dir = scratch();
    let path = dir.path().join("ca.pub");
    std::fs::write(
        &path,
        pubkey_string(key.public_key(), "conformance CA") + "\n",
    )
    .expect("write");
    let out = run_ok(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&path)).await;
    let ours = ssh_public_key(key.public_key())
        .fingerprint(Default::default())
        .to_string();
    assert!(
        out.contains(&ours),
        "ssh-keygen -l says {out:?}, we say {ours}"
    );
    let bits = &algorithm.curve_name()[2..];
    assert!(
        out.starts_with(bits),
        "ssh-keygen -l reports {out:?} for {algorithm}"
    );
}

/// Thousands of signatures, each checked three independent ways: RustCrypto over the
/// digest, DER and `r||s` round trips, and ssh-key's verifier over the SSH (mpint) form,
/// where leading zero bytes must be stripped.
pub async fn sign_verify_round_trips(key: &dyn KmsKey) {
    let algorithm = key.algorithm();
    let ssh_key = ssh_public_key(key.public_key());
    let mut leading_zero = 0usize;
    for i in 0..ROUND_TRIPS {
        let message = format!("conformance message {i}");
        let digest = algorithm.digest(message.as_bytes());
        let signature = key
            .sign_message(message.as_bytes())
            .await
            .expect("sign_message");
        assert_eq!(signature.algorithm(), algorithm);
        key.public_key()
            .verify_digest(&digest, &signature)
            .unwrap_or_else(|e| panic!("signature {i} does not verify: {e}"));
        let der = signature.to_der();
        assert_eq!(
            EcdsaSignature::from_der(algorithm, &der).ok(),
            Some(signature),
            "DER round trip {i}"
        );
        let fixed = signature.to_fixed();
        assert_eq!(fixed.len(), 2 * algorithm.field_len());
        assert_eq!(
            EcdsaSignature::from_fixed(algorithm, &fixed).ok(),
            Some(signature),
            "r||s round trip {i}"
        );
        let (r, s) = signature.r_s();
        if r[0] == 0 || s[0] == 0 {
            leading_zero += 1;
        }
        let ssh = ssh_signature(&signature).expect("SSH form");
        signature::Verifier::verify(&ssh_key, message.as_bytes(), &ssh)
            .unwrap_or_else(|e| panic!("ssh-key rejects signature {i} in SSH form: {e}"));
    }
    assert!(
        leading_zero > 0,
        "no leading-zero r or s in {ROUND_TRIPS} {algorithm} signatures"
    );
}

/// A digest of the wrong length is refused before anything is signed.
pub async fn wrong_digest_length_is_refused(key: &dyn KmsKey) {
    let length = key.algorithm().digest_len();
    for bad in [0, 20, length - 1, length + 1, 128] {
        let err = key
            .sign_digest(&vec![1u8; bad])
            .await
            .expect_err("wrong-length digest signed");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad} bytes: {err}");
    }
}

/// Message signatures of any size verify with `openssl dgst -verify`; a changed message
/// does not.
pub async fn message_signatures_verify_with_openssl(key: &dyn KmsKey) {
    let dir = scratch();
    let algorithm = key.algorithm();
    let pem = dir.path().join("pub.pem");
    std::fs::write(&pem, key.public_key().to_pem().expect("PEM")).expect("write");
    for (name, size) in [
        ("empty", 0usize),
        ("small", 100),
        ("over-4k", 5000),
        ("one-mib", 1 << 20),
    ] {
        let message: Vec<u8> = (0..size)
            .map(|i| u8::try_from(i % 251).unwrap_or_default())
            .collect();
        let signature = key.sign_message(&message).await.expect("sign_message");
        let msg_path = dir.path().join(name);
        let sig_path = dir.path().join(format!("{name}.sig"));
        std::fs::write(&msg_path, &message).expect("write");
        std::fs::write(&sig_path, signature.to_der()).expect("write");
        let verify = |msg: &Path| {
            let mut c = Command::new("openssl");
            c.arg("dgst")
                .arg(format!("-{}", algorithm.hash_name()))
                .arg("-verify")
                .arg(&pem);
            c.arg("-signature").arg(&sig_path).arg(msg);
            c
        };
        let out = run_ok(&mut verify(&msg_path)).await;
        assert!(out.contains("Verified OK"), "openssl on {name}: {out}");
        let changed = dir.path().join(format!("{name}.changed"));
        std::fs::write(&changed, [message.as_slice(), b"x"].concat()).expect("write");
        assert!(
            !run(&mut verify(&changed)).await.status.success(),
            "openssl accepted a changed {name}"
        );
    }
}

/// Subject keys OpenSSH makes: (file name, `-t`, `-b`).
const SUBJECT_TYPES: [(&str, &str, Option<u32>); 3] = [
    ("ed25519", "ed25519", None),
    ("ecdsa", "ecdsa", Some(256)),
    ("rsa", "rsa", Some(3072)),
];

async fn write_certificate(
    key: &dyn KmsKey,
    subject: &Path,
    params: &CertificateParameters,
) -> PathBuf {
    let line = std::fs::read_to_string(pub_path(subject)).expect("subject .pub");
    let cert = issue(key, &parse_subject_key(&line).expect("subject"), params)
        .await
        .expect("issue");
    let path = cert_path_for(subject);
    std::fs::write(&path, cert.cert_string("conformance") + "\n").expect("write cert");
    path
}

fn names(list: &[(String, String)]) -> Vec<(String, String)> {
    let mut list = list.to_vec();
    list.sort();
    list
}

/// User certificates for Ed25519, ECDSA and RSA subjects: `ssh-keygen -L` shows exactly
/// the type, key id, serial, principals, validity, options and extensions we asked for,
/// and names our CA.
pub async fn user_certificates_listed_by_ssh_keygen(key: &dyn KmsKey) {
    let dir = scratch();
    let now = unix_now();
    let ca_fingerprint = ssh_public_key(key.public_key())
        .fingerprint(Default::default())
        .to_string();
    for (name, key_type, bits) in SUBJECT_TYPES {
        let subject = keygen(dir.path(), name, key_type, bits).await;
        let mut params = CertificateParameters::user();
        params
            .principals(["alice", "deploy"])
            .and_then(|p| p.key_id(format!("alice {name} key")))
            .and_then(|p| p.serial(u64::MAX - 7))
            .and_then(|p| p.valid_after(now - 30))
            .and_then(|p| p.valid_before(now + 8 * 3600))
            .and_then(|p| {
                p.critical_option(CriticalOption::ForceCommand("/usr/bin/uptime -p".into()))
            })
            .and_then(|p| {
                p.critical_option(CriticalOption::SourceAddress("127.0.0.1/32,::1".into()))
            })
            .and_then(|p| p.extension(Extension::PermitPty))
            .and_then(|p| p.extension(Extension::PermitAgentForwarding))
            .and_then(|p| {
                p.extension(Extension::Custom {
                    name: "team@example.com".into(),
                    value: "sre".into(),
                })
            })
            .expect("parameters");
        let listing = list_certificate(&write_certificate(key, &subject, &params).await).await;
        assert_eq!(listing.cert_type, "user", "{name}");
        assert!(
            listing.algorithm.contains("-cert-v01@openssh.com"),
            "{listing:?}"
        );
        assert!(
            listing.signing_ca.contains(&ca_fingerprint),
            "{name}: {}",
            listing.signing_ca
        );
        assert!(
            listing.signing_ca.contains(key.algorithm().ssh_name()),
            "{}",
            listing.signing_ca
        );
        assert_eq!(listing.key_id, format!("alice {name} key"));
        assert_eq!(listing.serial, u64::MAX - 7);
        assert_eq!(listing.principals, ["alice", "deploy"]);
        assert_eq!(listing.valid, expected_validity(now - 30, now + 8 * 3600));
        assert_eq!(
            names(&listing.critical_options),
            [
                ("force-command".to_owned(), "/usr/bin/uptime -p".to_owned()),
                ("source-address".to_owned(), "127.0.0.1/32,::1".to_owned()),
            ]
        );
        assert_eq!(
            names(&listing.extensions),
            [
                ("permit-agent-forwarding".to_owned(), String::new()),
                ("permit-pty".to_owned(), String::new()),
                ("team@example.com".to_owned(), "sre".to_owned()),
            ]
        );
    }
    // Defaults: ssh-keygen's five user extensions, no options, the default window.
    let subject = keygen(dir.path(), "defaults", "ed25519", None).await;
    let mut params = CertificateParameters::user();
    params.principal("alice").expect("principal");
    let listing = list_certificate(&write_certificate(key, &subject, &params).await).await;
    assert_eq!(listing.extensions.len(), 5, "{listing:?}");
    assert!(listing.critical_options.is_empty());
    assert_eq!(listing.key_id, "");
}

/// Host certificates for each subject type, listed as host certificates with no
/// options or extensions, and "forever" when asked.
pub async fn host_certificates_listed_by_ssh_keygen(key: &dyn KmsKey) {
    let dir = scratch();
    for (name, key_type, bits) in SUBJECT_TYPES {
        let subject = keygen(dir.path(), name, key_type, bits).await;
        let mut params = CertificateParameters::host();
        params
            .principals(["web-01.example.com", "10.0.0.15"])
            .and_then(|p| p.key_id("web-01"))
            .and_then(|p| p.serial(7))
            .and_then(|p| p.valid_after(0))
            .and_then(|p| p.valid_before(u64::MAX))
            .expect("parameters");
        let listing = list_certificate(&write_certificate(key, &subject, &params).await).await;
        assert_eq!(listing.cert_type, "host", "{name}");
        assert_eq!((listing.key_id.as_str(), listing.serial), ("web-01", 7));
        assert_eq!(listing.principals, ["web-01.example.com", "10.0.0.15"]);
        assert_eq!(listing.valid, "forever");
        assert!(
            listing.critical_options.is_empty() && listing.extensions.is_empty(),
            "{listing:?}"
        );
    }
}

/// Security-key subjects (`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`)
/// are certified and listed by ssh-keygen.
pub async fn security_key_subjects_listed_by_ssh_keygen(key: &dyn KmsKey) {
    let dir = scratch();
    let sk_keys = [
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYRAAAABHNzaDo= sk",
        "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBM5GnXQj2WPB+kU6Zfp00aCyGNcbw30jYYeahhlCEZOS3a9SCDzt2mUuJTFSrZzxJ/8SANNs7gywM09rQHuvN0MAAAAEc3NoOg== sk",
    ];
    for (i, line) in sk_keys.iter().enumerate() {
        let subject = dir.path().join(format!("sk{i}"));
        std::fs::write(pub_path(&subject), line).expect("write");
        let mut params = CertificateParameters::user();
        params
            .principal("alice")
            .and_then(|p| p.critical_option(CriticalOption::VerifyRequired))
            .and_then(|p| p.extension(Extension::NoTouchRequired))
            .expect("parameters");
        let listing = list_certificate(&write_certificate(key, &subject, &params).await).await;
        assert!(listing.algorithm.starts_with("sk-"), "{listing:?}");
        assert_eq!(
            listing.critical_options,
            [("verify-required".to_owned(), String::new())]
        );
        assert_eq!(
            listing.extensions,
            [("no-touch-required".to_owned(), String::new())]
        );
    }
}

/// Many certificates issued at once through one key handle all verify.
pub async fn concurrent_issuing(key: Arc<dyn KmsKey>) {
    let subject = parse_subject_key(TEST_SUBJECT).expect("subject");
    let ca = ssh_public_key(key.public_key());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        let (key, subject) = (key.clone(), subject.clone());
        tasks.spawn(async move {
            let mut params = CertificateParameters::user();
            params
                .principal(format!("user{i}"))
                .and_then(|p| p.serial(i))
                .expect("parameters");
            issue(key.as_ref(), &subject, &params).await.expect("issue")
        });
    }
    let mut serials = Vec::new();
    while let Some(cert) = tasks.join_next().await {
        let cert: Certificate = cert.expect("task");
        cert.verify(&ca, &VerifyOptions::default())
            .expect("verifies");
        serials.push(cert.as_ssh_key().serial());
    }
    serials.sort_unstable();
    assert_eq!(serials, (0..64).collect::<Vec<_>>());
}

/// A user, a host key, and the sshd configuration that trusts `key` as the user CA.
struct LoginSetup {
    dir: tempfile::TempDir,
    user: String,
    user_key: PathBuf,
    host_key: PathBuf,
}

impl LoginSetup {
    async fn new() -> Self {
        let dir = scratch();
        let user_key = keygen(dir.path(), "id_ed25519", "ed25519", None).await;
        let host_key = keygen(dir.path(), "ssh_host_ecdsa_key", "ecdsa", Some(256)).await;
        Self {
            user: openssh::current_user(),
            dir,
            user_key,
            host_key,
        }
    }

    fn user_params(&self) -> CertificateParameters {
        let mut params = CertificateParameters::user();
        params.principal(self.user.clone()).expect("principal");
        params
    }

    fn sshd(&self, key: &dyn KmsKey, host_certificate: Option<&Path>) -> Sshd {
        Sshd::start(&SshdConfig {
            dir: self.dir.path(),
            trusted_user_ca: &pubkey_string(key.public_key(), "kmssh conformance CA"),
            host_key: &self.host_key,
            host_certificate,
            revoked_keys: None,
        })
    }

    fn plain_known_hosts(&self, port: u16) -> String {
        let host_pub = std::fs::read_to_string(pub_path(&self.host_key)).expect("host .pub");
        format!("[127.0.0.1]:{port} {}", host_pub.trim())
    }

    async fn login(
        &self,
        sshd: &Sshd,
        certificate: Option<&Path>,
        command: &str,
    ) -> std::process::Output {
        self.login_knowing(
            sshd,
            certificate,
            &self.plain_known_hosts(sshd.port()),
            command,
        )
        .await
    }

    /// Logs in with `known_hosts` as all the client knows of the server.
    async fn login_knowing(
        &self,
        sshd: &Sshd,
        certificate: Option<&Path>,
        known_hosts: &str,
        command: &str,
    ) -> std::process::Output {
        SshLogin {
            dir: self.dir.path(),
            port: sshd.port(),
            user: &self.user,
            identity: &self.user_key,
            certificate,
            known_hosts,
            command,
        }
        .run()
        .await
    }
}

fn assert_logged_in(output: &std::process::Output, sshd: &Sshd, expected_stdout: &str) {
    assert!(
        output.status.success(),
        "ssh failed ({}): {}\n--- sshd log ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        sshd.log_text()
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        expected_stdout
    );
}

fn assert_refused(output: &std::process::Output, sshd: &Sshd, log_reason: &str) {
    assert!(
        !output.status.success(),
        "ssh got in: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Permission denied"),
        "ssh failed for another reason: {stderr}"
    );
    let log = sshd.log_text();
    assert!(
        log.contains(log_reason),
        "sshd log lacks {log_reason:?}:\n{log}"
    );
}

/// sshd trusting our CA lets a user in with a certificate we issued.
pub async fn sshd_accepts_user_certificate(key: &dyn KmsKey) {
    let setup = LoginSetup::new().await;
    let cert = write_certificate(key, &setup.user_key, &setup.user_params()).await;
    let sshd = setup.sshd(key, None);
    let output = setup
        .login(&sshd, Some(&cert), "echo logged-in-with-kmssh")
        .await;
    assert_logged_in(&output, &sshd, "logged-in-with-kmssh");
    // The same key without its certificate is refused: the certificate did the work.
    // (ssh picks up `KEY-cert.pub` by itself, so the certificate is moved away first.)
    std::fs::rename(&cert, setup.dir.path().join("moved-cert")).expect("move certificate");
    let without = setup.login(&sshd, None, "echo no").await;
    assert!(!without.status.success(), "logged in without a certificate");
}

/// A certificate for another principal is refused.
pub async fn sshd_refuses_wrong_principal(key: &dyn KmsKey) {
    let setup = LoginSetup::new().await;
    let mut params = CertificateParameters::user();
    params.principal("somebody-else").expect("principal");
    let cert = write_certificate(key, &setup.user_key, &params).await;
    let sshd = setup.sshd(key, None);
    assert_refused(
        &setup.login(&sshd, Some(&cert), "true").await,
        &sshd,
        "not a listed principal",
    );
}

/// An expired certificate is refused.
pub async fn sshd_refuses_expired_certificate(key: &dyn KmsKey) {
    let setup = LoginSetup::new().await;
    let now = unix_now();
    let mut params = setup.user_params();
    params
        .valid_after(now - 7200)
        .and_then(|p| p.valid_before(now - 3600))
        .expect("window");
    let cert = write_certificate(key, &setup.user_key, &params).await;
    let sshd = setup.sshd(key, None);
    assert_refused(
        &setup.login(&sshd, Some(&cert), "true").await,
        &sshd,
        "expired",
    );
}

/// A certificate signed by another CA (made by `ssh-keygen -s`) is refused.
pub async fn sshd_refuses_certificate_from_another_ca(key: &dyn KmsKey) {
    let setup = LoginSetup::new().await;
    let other_ca = keygen(setup.dir.path(), "other_ca", "ecdsa", Some(256)).await;
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&other_ca)
            .args(["-I", "other", "-n", &setup.user, "-V", "-5m:+1h"])
            .arg(pub_path(&setup.user_key)),
    )
    .await;
    let sshd = setup.sshd(key, None);
    let cert = cert_path_for(&setup.user_key);
    assert_refused(
        &setup.login(&sshd, Some(&cert), "true").await,
        &sshd,
        "Failed publickey",
    );
    assert!(
        sshd.log_text().contains("ID other"),
        "sshd saw another certificate:\n{}",
        sshd.log_text()
    );
}

/// A `force-command` certificate runs the forced command, whatever the client asks.
pub async fn sshd_runs_forced_command(key: &dyn KmsKey) {
    let setup = LoginSetup::new().await;
    let mut params = setup.user_params();
    params
        .critical_option(CriticalOption::ForceCommand(
            "echo forced-by-certificate".into(),
        ))
        .expect("option");
    let cert = write_certificate(key, &setup.user_key, &params).await;
    let sshd = setup.sshd(key, None);
    let output = setup
        .login(&sshd, Some(&cert), "echo the-client-asked")
        .await;
    assert_logged_in(&output, &sshd, "forced-by-certificate");
}

/// `source-address` is enforced: another network is refused, 127.0.0.1 admitted.
pub async fn sshd_enforces_source_address(key: &dyn KmsKey) {
    let setup = LoginSetup::new().await;
    let sshd = setup.sshd(key, None);
    let mut elsewhere = setup.user_params();
    elsewhere
        .critical_option(CriticalOption::SourceAddress("192.0.2.0/24".into()))
        .expect("option");
    let cert = write_certificate(key, &setup.user_key, &elsewhere).await;
    assert_refused(
        &setup.login(&sshd, Some(&cert), "true").await,
        &sshd,
        "not from a permitted source address",
    );

    let mut here = setup.user_params();
    here.critical_option(CriticalOption::SourceAddress(
        "10.0.0.0/8,127.0.0.1/32".into(),
    ))
    .expect("option");
    let cert = write_certificate(key, &setup.user_key, &here).await;
    assert_logged_in(
        &setup.login(&sshd, Some(&cert), "echo from-loopback").await,
        &sshd,
        "from-loopback",
    );
}

async fn host_certificate_login(
    key: &dyn KmsKey,
    trusted_ca_line: &str,
) -> (std::process::Output, Sshd) {
    let setup = LoginSetup::new().await;
    let mut host_params = CertificateParameters::host();
    host_params
        .principals(["127.0.0.1", "localhost"])
        .expect("principals");
    // paramiko-cloud puts every extension into host requests too, and ssh-keygen -h -O
    // permit-pty writes one: the client must still accept the host.
    for extension in Extension::USER_DEFAULTS {
        host_params.extension(extension).expect("extension");
    }
    let host_cert = write_certificate(key, &setup.host_key, &host_params).await;
    let user_cert = write_certificate(key, &setup.user_key, &setup.user_params()).await;
    let sshd = setup.sshd(key, Some(&host_cert));
    let known_hosts = format!(
        "@cert-authority [127.0.0.1]:{} {trusted_ca_line}",
        sshd.port()
    );
    let output = setup
        .login_knowing(&sshd, Some(&user_cert), &known_hosts, "echo host-verified")
        .await;
    (output, sshd)
}

/// The `ssh` client, knowing only our CA (`@cert-authority`), accepts a host certificate
/// we issued with `StrictHostKeyChecking=yes`.
pub async fn ssh_accepts_host_certificate(key: &dyn KmsKey) {
    let (output, sshd) =
        host_certificate_login(key, &pubkey_string(key.public_key(), "kmssh host CA")).await;
    assert_logged_in(&output, &sshd, "host-verified");
}

/// The same client, trusting another CA, refuses the host.
pub async fn ssh_refuses_host_certificate_from_another_ca(key: &dyn KmsKey) {
    let dir = scratch();
    let other = keygen(dir.path(), "other_host_ca", "ed25519", None).await;
    let other_line = std::fs::read_to_string(pub_path(&other)).expect("pub");
    let (output, _sshd) = host_certificate_login(key, other_line.trim()).await;
    assert!(
        !output.status.success(),
        "ssh trusted a host certificate from an untrusted CA"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
}
