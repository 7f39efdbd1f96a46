//! The shared conformance cases. Each takes an opened key and panics, with a message
//! saying what broke, when the backend does not behave. Every backend's test target runs
//! all of them, for every kind of key it offers (curves, RSA sizes, Ed25519); the fault
//! cases ([`faults`]) run for every fixture that can inject faults.

pub mod faults;
pub mod login;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kmssh_core::{
    Algorithm, EcdsaSignature, ErrorKind, HashAlgorithm, KeySpec, KmsKey, PublicKey, Signature,
    SigningInput, SigningPayload,
};
use kmssh_pki::{
    Certificate, CertificateParameters, CertificateType, CriticalOption, Extension, VerifyOptions,
    cert_path_for, issue, parse_subject_key, pubkey_string, sign_sshsig_pem, ssh_public_key,
    ssh_signature, ssh_signature_algorithm, unix_now,
};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use crate::openssh::{
    self, SshLogin, Sshd, SshdConfig, expected_validity, keygen, list_certificate, pub_path, run,
    run_ok,
};

/// Signatures per key in [`sign_verify_round_trips`] with its default algorithm, unless
/// the fixture says otherwise ([`Fixture::round_trips`](crate::fixture::Fixture::round_trips)):
/// enough that fixed-width `r` or `s` with a leading zero byte (1 in 128 per signature on
/// P-256/384) shows up dozens of times, and DER padding (1 in 2) thousands.
pub const ROUND_TRIPS: usize = 10_000;

/// Signatures with each of a key's other algorithms (an RSA key's other hashes).
pub const OTHER_ALGORITHM_ROUND_TRIPS: usize = 50;

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
/// fingerprint we compute, the key's size and its type.
pub async fn public_key_matches_ssh_keygen(key: &dyn KmsKey) {
    assert!(
        key.algorithms()
            .iter()
            .all(|a| key.public_key().can_sign(*a)),
        "{:?} offered by a {} key",
        key.algorithms(),
        key.public_key().description()
    );
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
    let (bits, kind) = match key.public_key().spec() {
        KeySpec::Ecdsa(curve) => (curve.name()[2..].to_owned(), "(ECDSA)"),
        KeySpec::Rsa(bits) => (bits.to_string(), "(RSA)"),
        KeySpec::Ed25519 => ("256".to_owned(), "(ED25519)"),
    };
    assert!(
        out.starts_with(&format!("{bits} ")) && out.trim_end().ends_with(kind),
        "ssh-keygen -l reports {out:?} for a {} key",
        key.public_key().description()
    );
}

/// Checks one signature with verifiers other than the one the key used: AWS-LC or ssh-key
/// over the SSH form (see [`verify_ssh_form`]), and RustCrypto's RSA PKCS#1 v1.5 verifier for RSA with SHA-384 (which has no
/// SSH form). For ECDSA, also the DER and `r||s` round trips; returns whether `r` or `s`
/// had a leading zero byte.
fn check_independently(
    public_key: &PublicKey,
    algorithm: Algorithm,
    message: &[u8],
    signature: &Signature,
    i: usize,
) {
    assert_eq!(signature.algorithm(), algorithm, "signature {i}");
    // Verified by a verifier other than the one `VerifiedSigner` uses: the SSH form (what
    // OpenSSH would check), RustCrypto's PKCS#1 for RSA SHA-384 (no SSH form).
    if algorithm.ssh_name().is_some() {
        let ssh = ssh_signature(signature).expect("SSH form");
        verify_ssh_form(public_key, algorithm, message, &ssh, i);
    } else if let (PublicKey::Rsa(rsa), Signature::Rsa(s)) = (public_key, signature) {
        use kmssh_core::rsa::pkcs1v15::{Signature as Pkcs1, VerifyingKey};
        let verifier = VerifyingKey::<sha2::Sha384>::new(rsa.clone());
        let pkcs1 = Pkcs1::try_from(s.as_bytes()).expect("RSA signature bytes");
        signature::Verifier::verify(&verifier, message, &pkcs1)
            .unwrap_or_else(|e| panic!("RustCrypto rejects RSA SHA-384 signature {i}: {e}"));
    } else {
        public_key
            .verify(
                algorithm,
                SigningPayload::new(algorithm, SigningInput::Message(message))
                    .expect("a message is always a payload")
                    .as_bytes(),
                signature,
            )
            .unwrap_or_else(|e| panic!("{algorithm} signature {i} does not verify: {e}"));
    }
    let Signature::Ecdsa(ecdsa) = signature else {
        return;
    };
    let curve = ecdsa.curve();
    assert_eq!(
        EcdsaSignature::from_der(curve, &ecdsa.to_der())
            .ok()
            .as_ref(),
        Some(ecdsa),
        "DER round trip {i}"
    );
    let fixed = ecdsa.to_fixed();
    assert_eq!(fixed.len(), 2 * curve.field_len());
    assert_eq!(
        EcdsaSignature::from_fixed(curve, &fixed).ok().as_ref(),
        Some(ecdsa),
        "r||s round trip {i}"
    );
}

/// The SSH form of a signature checked by a library other than the backend's own
/// check: AWS-LC for ECDSA where it is built in (RustCrypto's P-384 and P-521 arithmetic,
/// which the backend uses, is several times slower, and ten thousand round trips per key
/// type add up), ssh-key otherwise and for RSA and Ed25519.
fn verify_ssh_form(
    public_key: &PublicKey,
    algorithm: Algorithm,
    message: &[u8],
    ssh: &kmssh_pki::ssh_key::Signature,
    i: usize,
) {
    #[cfg(feature = "local-aws-lc")]
    if let PublicKey::Ecdsa(key) = public_key {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED,
            UnparsedPublicKey,
        };
        use kmssh_core::Curve;
        use kmssh_pki::ssh_key::Mpint;
        use kmssh_pki::ssh_key::encoding::Decode as _;

        // The SSH form is `mpint r, mpint s` (RFC 5656 §3.1.2): decoded here, not by the
        // code under test, into the fixed-width `r||s` AWS-LC verifies.
        let width = key.curve().field_len();
        let mut blob = ssh.as_bytes();
        let mut fixed = Vec::with_capacity(2 * width);
        for part in ["r", "s"] {
            let mpint = Mpint::decode(&mut blob)
                .unwrap_or_else(|e| panic!("signature {i}: SSH form's {part}: {e}"));
            let bytes = mpint
                .as_positive_bytes()
                .unwrap_or_else(|| panic!("signature {i}: SSH form's {part} is not positive"));
            assert!(bytes.len() <= width, "signature {i}: {part} is too long");
            fixed.resize(fixed.len() + width - bytes.len(), 0);
            fixed.extend_from_slice(bytes);
        }
        assert!(
            blob.is_empty(),
            "signature {i}: bytes after s in the SSH form"
        );
        let verifier = match key.curve() {
            Curve::P256 => &ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &ECDSA_P521_SHA512_FIXED,
        };
        UnparsedPublicKey::new(verifier, key.to_sec1_bytes())
            .verify(message, &fixed)
            .unwrap_or_else(|_| panic!("AWS-LC rejects {algorithm} signature {i} in SSH form"));
        return;
    }
    signature::Verifier::verify(&ssh_public_key(public_key), message, ssh)
        .unwrap_or_else(|e| panic!("ssh-key rejects {algorithm} signature {i} in SSH form: {e}"));
}

/// How many signatures of one kind need what in DER and in fixed width.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodingCounts {
    /// `r` or `s` has its top bit set: DER needs a 0x00 before it.
    pub der_padded: usize,
    /// `r` or `s` is shorter than the field: fixed-width `r‖s` starts it with 0x00.
    pub leading_zero: usize,
}

fn encoding_counts(signature: &Signature) -> EncodingCounts {
    let Signature::Ecdsa(ecdsa) = signature else {
        return EncodingCounts::default();
    };
    let (r, s) = ecdsa.r_s();
    let padded = |scalar: &[u8]| {
        scalar
            .iter()
            .find(|b| **b != 0)
            .is_some_and(|first| first & 0x80 != 0)
    };
    EncodingCounts {
        der_padded: usize::from(padded(&r) || padded(&s)),
        leading_zero: usize::from(r[0] == 0 || s[0] == 0),
    }
}

/// `count` signatures with the key's default algorithm, 16 in flight: each over a digest
/// computed here (the message itself for Ed25519), as a CA signs, and each checked by
/// independent verifiers (see `check_independently`), with the DER and `r||s` round
/// trips for ECDSA, where padding and leading zero bytes must survive; then some with
/// each of its other algorithms. Prints how many needed DER padding.
pub async fn sign_verify_round_trips(key: &dyn KmsKey, count: usize) {
    use futures_util::StreamExt as _;

    let default = key.algorithm();
    let signed = futures_util::stream::iter(0..count)
        .map(|i| async move {
            let message = format!("conformance message {i}");
            let signature = match default.digest(message.as_bytes()) {
                Some(digest) => {
                    key.sign(default, SigningInput::Digest(digest.as_ref()))
                        .await
                }
                None => {
                    key.sign(default, SigningInput::Message(message.as_bytes()))
                        .await
                }
            }
            .unwrap_or_else(|e| panic!("{default} signature {i}: {e}"));
            check_independently(key.public_key(), default, message.as_bytes(), &signature, i);
            encoding_counts(&signature)
        })
        .buffer_unordered(16)
        .fold(EncodingCounts::default(), |total, one| async move {
            EncodingCounts {
                der_padded: total.der_padded + one.der_padded,
                leading_zero: total.leading_zero + one.leading_zero,
            }
        })
        .await;
    eprintln!(
        "round trips: {} {default}: {count} signatures verified; {} needed DER padding (0x00 before r or s), {} had a leading zero byte in r or s",
        key.uri(),
        signed.der_padded,
        signed.leading_zero
    );
    if default.curve().is_some() && count >= ROUND_TRIPS {
        assert!(
            signed.leading_zero > 0 && signed.der_padded > 0,
            "{count} {default} signatures without both a padded and a short r or s: {signed:?}"
        );
    }
    for &algorithm in key.algorithms().iter().filter(|a| **a != default) {
        for i in 0..OTHER_ALGORITHM_ROUND_TRIPS {
            let message = format!("{algorithm} message {i}");
            let signature = key
                .sign(algorithm, SigningInput::Message(message.as_bytes()))
                .await
                .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
            check_independently(
                key.public_key(),
                algorithm,
                message.as_bytes(),
                &signature,
                i,
            );
        }
    }
    for algorithm in Algorithm::ALL {
        if key.algorithms().contains(&algorithm) {
            continue;
        }
        let err = key
            .sign(algorithm, SigningInput::Message(b"not offered"))
            .await
            .expect_err("an algorithm the key does not offer");
        assert_eq!(
            err.kind(),
            ErrorKind::UnsupportedAlgorithm,
            "{algorithm}: {err}"
        );
    }
}

/// A digest of the wrong length, or any digest for Ed25519 (which signs messages), is
/// refused before anything is signed.
pub async fn wrong_digest_length_is_refused(key: &dyn KmsKey) {
    let Some(length) = key.algorithm().hash().map(HashAlgorithm::len) else {
        for digest in [&[0u8; 64][..], &[1u8; 32], &[]] {
            let err = key
                .sign_digest(digest)
                .await
                .expect_err("Ed25519 signed a digest");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        }
        return;
    };
    for bad in [0, 20, length - 1, length + 1, 128] {
        let err = key
            .sign_digest(&vec![1u8; bad])
            .await
            .expect_err("wrong-length digest signed");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad} bytes: {err}");
    }
}

/// `openssl` checking a signature file over a message file, as a user would: `dgst
/// -verify` for pre-hashed algorithms, `pkeyutl -verify -rawin` for Ed25519.
fn openssl_verify(algorithm: Algorithm, pem: &Path, signature: &Path, message: &Path) -> Command {
    let mut c = Command::new("openssl");
    match algorithm.hash() {
        Some(hash) => {
            c.arg("dgst")
                .arg(format!("-{}", hash.name()))
                .arg("-verify")
                .arg(pem)
                .arg("-signature")
                .arg(signature)
                .arg(message);
        }
        None => {
            c.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
                .arg(pem)
                .arg("-in")
                .arg(message)
                .arg("-sigfile")
                .arg(signature);
        }
    }
    c
}

/// Message signatures of any size, with each algorithm the key offers, verify with
/// `openssl`; a changed message does not. Where the provider limits signed messages
/// (Ed25519 on AWS), larger ones are refused before any call, naming the limit.
pub async fn message_signatures_verify_with_openssl(key: &dyn KmsKey) {
    let dir = scratch();
    let pem = dir.path().join("pub.pem");
    std::fs::write(&pem, key.public_key().to_pem().expect("PEM")).expect("write");
    for &algorithm in key.algorithms() {
        for (name, size) in [
            ("empty", 0usize),
            ("small", 100),
            ("at-4k", 4096),
            ("over-4k", 5000),
            ("one-mib", 1 << 20),
        ] {
            let message: Vec<u8> = (0..size)
                .map(|i| u8::try_from(i % 251).unwrap_or_default())
                .collect();
            let signed = key.sign(algorithm, SigningInput::Message(&message)).await;
            let limit = key.max_message_len().filter(|_| !algorithm.is_prehashed());
            // AWS KMS signs RAW messages of 1 to 4096 bytes: the empty one is refused too.
            if let Some(limit) = limit
                && (size > limit || size == 0)
            {
                let err = signed.expect_err("a message over the provider's limit");
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
                assert!(err.to_string().contains(&limit.to_string()), "{err}");
                continue;
            }
            let signature = signed.unwrap_or_else(|e| panic!("{algorithm} {name}: {e}"));
            if size == 0 && !algorithm.is_prehashed() {
                // OpenSSL 3.0's `pkeyutl -rawin` cannot read an empty file; ed25519-dalek
                // (not the verifier the key used) checks this one.
                if let (PublicKey::Ed25519(public), Signature::Ed25519(s)) =
                    (key.public_key(), &signature)
                {
                    public
                        .verify_strict(&message, s)
                        .unwrap_or_else(|e| panic!("empty-message Ed25519 signature: {e}"));
                }
                continue;
            }
            let msg_path = dir.path().join(name);
            let sig_path = dir.path().join(format!("{name}.sig"));
            std::fs::write(&msg_path, &message).expect("write");
            std::fs::write(&sig_path, signature.to_bytes()).expect("write");
            let out = run_ok(&mut openssl_verify(algorithm, &pem, &sig_path, &msg_path)).await;
            assert!(
                out.contains("Verified OK") || out.contains("Signature Verified Successfully"),
                "openssl on {algorithm} {name}: {out}"
            );
            let changed = dir.path().join(format!("{name}.changed"));
            std::fs::write(&changed, [message.as_slice(), b"x"].concat()).expect("write");
            assert!(
                !run(&mut openssl_verify(algorithm, &pem, &sig_path, &changed))
                    .await
                    .status
                    .success(),
                "openssl accepted a changed {name} under {algorithm}"
            );
        }
    }
}

/// SSH signatures (`SSHSIG`) verify with `ssh-keygen -Y verify` against an
/// allowed-signers line for the key; another namespace does not.
pub async fn sshsig_verifies_with_ssh_keygen(key: &dyn KmsKey) {
    let dir = scratch();
    let message = b"conformance SSHSIG message\n";
    let armored = sign_sshsig_pem(key, "file", message).await.expect("SSHSIG");
    let signers = dir.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!("ca@example.com {}\n", pubkey_string(key.public_key(), "")),
    )
    .expect("write");
    let sig_path = dir.path().join("message.sig");
    std::fs::write(&sig_path, armored).expect("write");
    let verify = |namespace: &str| {
        let mut c = Command::new("ssh-keygen");
        c.args([
            "-Y",
            "verify",
            "-I",
            "ca@example.com",
            "-n",
            namespace,
            "-f",
        ])
        .arg(&signers)
        .arg("-s")
        .arg(&sig_path)
        .stdin(std::process::Stdio::piped());
        c
    };
    let output = openssh::run_with_stdin(&mut verify("file"), message).await;
    assert!(
        output.status.success(),
        "ssh-keygen -Y verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = openssh::run_with_stdin(&mut verify("git"), message).await;
    assert!(!output.status.success(), "another namespace verified");
}

/// The CA's signature algorithm: an RSA CA signs `rsa-sha2-512` by default and
/// `rsa-sha2-256` when asked, as `ssh-keygen -L` shows and sshd accepts; a key that does
/// not offer the algorithm asked for refuses before any call; RSA with SHA-384, which SSH
/// does not define, is refused.
pub async fn ca_signature_algorithm_is_chosen(key: &dyn KmsKey) {
    let dir = scratch();
    let subject = keygen(dir.path(), "id_ed25519", "ed25519", None).await;
    let default = ssh_signature_algorithm(key, None).expect("an SSH algorithm");
    if key.public_key().spec().family() == kmssh_core::KeyFamily::Rsa {
        assert!(
            matches!(
                default,
                Algorithm::RsaPkcs1Sha512 | Algorithm::RsaPkcs1Sha256
            ),
            "{default}"
        );
        if key.algorithms().contains(&Algorithm::RsaPkcs1Sha512) {
            assert_eq!(default, Algorithm::RsaPkcs1Sha512, "ssh-keygen's default");
        }
    }
    for algorithm in [
        Algorithm::RsaPkcs1Sha256,
        Algorithm::RsaPkcs1Sha512,
        Algorithm::Ed25519,
        Algorithm::EcdsaP256Sha256,
    ] {
        let mut params = CertificateParameters::user();
        params
            .principal("alice")
            .and_then(|p| p.ca_signature_algorithm_is(algorithm))
            .expect("parameters");
        let line = std::fs::read_to_string(pub_path(&subject)).expect("subject");
        let issued = issue(key, &parse_subject_key(&line).expect("subject"), &params).await;
        if !key.algorithms().contains(&algorithm) {
            let err = issued.expect_err("an algorithm the CA key does not offer");
            assert!(
                matches!(err, kmssh_pki::Error::UnsupportedKey { .. }),
                "{algorithm}: {err}"
            );
            continue;
        }
        let cert = issued.unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        let path = cert_path_for(&subject);
        std::fs::write(&path, cert.cert_string("conformance") + "\n").expect("write");
        let listing = list_certificate(&path).await;
        let name = algorithm.ssh_name().expect("SSH name");
        assert!(
            listing.signing_ca.contains(&format!("(using {name})")),
            "{algorithm}: {}",
            listing.signing_ca
        );
    }
    let mut params = CertificateParameters::user();
    params
        .principal("alice")
        .and_then(|p| p.ca_signature_algorithm_is(Algorithm::RsaPkcs1Sha384))
        .expect("parameters");
    let err = issue(
        key,
        &parse_subject_key(TEST_SUBJECT).expect("subject"),
        &params,
    )
    .await
    .expect_err("RSA SHA-384 in SSH");
    assert!(
        matches!(err, kmssh_pki::Error::UnsupportedKey { .. }),
        "{err}"
    );
}

/// An X.509 CA certificate and a leaf under it, signed through the key with each
/// algorithm it offers for X.509 (sha256WithRSAEncryption by default for RSA), pass
/// `openssl verify`; `openssl x509 -text` names the algorithm.
pub async fn x509_chain_verifies_with_openssl(key: &dyn KmsKey) {
    use kmssh_pki::x509::{
        CaRequest, LeafKey, LeafRequest, certificate_to_pem, issue_ca, issue_leaf,
        parse_public_key, signature_algorithm_for,
    };
    let dir = scratch();
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(dir.path().join("leaf.key")),
    )
    .await;
    let leaf_pub = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(dir.path().join("leaf.key")),
    )
    .await;
    let default = signature_algorithm_for(key, None).expect("an X.509 algorithm");
    let mut algorithms = vec![default];
    algorithms.extend(key.algorithms().iter().filter(|a| **a != default));
    for algorithm in algorithms {
        let mut ca_request = CaRequest::new("CN=kmssh conformance CA");
        ca_request.signature_algorithm = Some(algorithm);
        let ca = issue_ca(key, &ca_request)
            .await
            .unwrap_or_else(|e| panic!("{algorithm} CA: {e}"));
        let spki = parse_public_key(leaf_pub.as_bytes()).expect("leaf key");
        let mut leaf_request = LeafRequest::new(ca.clone(), LeafKey::PublicKey(spki));
        leaf_request.subject = Some("CN=www.example.com".to_owned());
        leaf_request.dns_names = vec!["www.example.com".to_owned()];
        leaf_request.signature_algorithm = Some(algorithm);
        let leaf = issue_leaf(key, &leaf_request)
            .await
            .unwrap_or_else(|e| panic!("{algorithm} leaf: {e}"));
        let ca_path = dir.path().join("ca.pem");
        let leaf_path = dir.path().join("leaf.pem");
        std::fs::write(&ca_path, certificate_to_pem(&ca).expect("PEM")).expect("write");
        std::fs::write(&leaf_path, certificate_to_pem(&leaf).expect("PEM")).expect("write");
        let out = run_ok(
            Command::new("openssl")
                .args(["verify", "-x509_strict", "-CAfile"])
                .arg(&ca_path)
                .arg(&leaf_path),
        )
        .await;
        assert!(out.contains(": OK"), "{algorithm}: {out}");
        let text = run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(&leaf_path),
        )
        .await;
        let shown = match algorithm {
            Algorithm::EcdsaP256Sha256 => "ecdsa-with-SHA256",
            Algorithm::EcdsaP384Sha384 => "ecdsa-with-SHA384",
            Algorithm::EcdsaP521Sha512 => "ecdsa-with-SHA512",
            Algorithm::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
            Algorithm::RsaPkcs1Sha384 => "sha384WithRSAEncryption",
            Algorithm::RsaPkcs1Sha512 => "sha512WithRSAEncryption",
            Algorithm::Ed25519 => "ED25519",
        };
        assert!(
            text.contains(&format!("Signature Algorithm: {shown}")),
            "{algorithm}: {text}"
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
        let ca_algorithm = ssh_signature_algorithm(key, None).expect("SSH algorithm");
        assert!(
            listing
                .signing_ca
                .contains(ca_algorithm.ssh_name().unwrap_or_default()),
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
            authorized_keys: None,
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

/// The signing service over this key: a token caller asks for a certificate through the
/// Rust client, sshd lets the user in with it, and the ledger holds it; a principal
/// outside the policy is refused naming the rule.
pub async fn service_certificate_logs_in(key: Arc<dyn KmsKey>) {
    let setup = LoginSetup::new().await;
    let token = "conformance-token-0123456789";
    let digest: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = setup.dir.path();
    let config = format!(
        r#"
listen = "127.0.0.1:0"
[keys]
ca = "{uri}"
[ledger]
url = "sqlite:{dir}/ledger.db"
[[caller]]
name = "conformance"
policy = "users"
token_sha256 = "{digest}"
[policy.users]
keys = ["ca"]
certificate_types = ["user"]
principals = ["{user}"]
max_validity = "1h"
"#,
        uri = key.uri(),
        dir = dir.display(),
        user = setup.user,
    );
    let config_path = dir.join("kmssh.toml");
    let config = kmssh_server::Config::parse(&config, &config_path).expect("configuration");
    let keys = std::collections::BTreeMap::from([("ca".to_owned(), key.clone())]);
    let options = kmssh_server::ServeOptions {
        insecure_loopback: true,
    };
    let bound = kmssh_server::Server::with_keys(config, keys, &options)
        .await
        .expect("the service starts")
        .bind()
        .await
        .expect("bind");
    let address = bound.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(bound.run_until(async move {
        let _ = stopped.await;
    }));

    let mut client = kmssh_server::Client::connect(kmssh_server::ClientOptions {
        server: format!("http://{address}"),
        token: Some(token.into()),
        timeout: Some(std::time::Duration::from_secs(60)),
        ..kmssh_server::ClientOptions::default()
    })
    .await
    .expect("connect");
    let ca = client.certificate_authority("ca").await.expect("CA");
    assert_eq!(ca, ssh_public_key(key.public_key()));
    let subject =
        parse_subject_key(&std::fs::read_to_string(pub_path(&setup.user_key)).expect("user .pub"))
            .expect("subject");
    let now = unix_now();
    let mut csr = kmssh_pki::csr::CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: Vec::new(),
        key_id: "conformance".into(),
        serial: 0,
        principals: vec![setup.user.clone()],
        valid_after: now - 60,
        valid_before: now + 600,
        public_key: subject,
    };
    let certificate = client
        .sign("ca", &csr, Some(&ca))
        .await
        .expect("certificate");
    csr.principals = vec!["someone-else".into()];
    match client.sign("ca", &csr, Some(&ca)).await {
        Err(kmssh_server::ClientError::Refused { code, message }) => {
            assert_eq!(code, tonic::Code::PermissionDenied, "{message}");
            assert!(message.contains("policy rule `principals`"), "{message}");
        }
        other => panic!("a principal outside the policy: {other:?}"),
    }
    let _ = stop.send(());
    serving
        .await
        .expect("service task")
        .expect("the service stops cleanly");

    let cert_path = cert_path_for(&setup.user_key);
    std::fs::write(&cert_path, certificate.cert_string("conformance")).expect("write certificate");
    let sshd = setup.sshd(key.as_ref(), None);
    let output = setup
        .login(&sshd, Some(&cert_path), "echo via-service")
        .await;
    assert_logged_in(&output, &sshd, "via-service");

    let ledger = kmssh_server::ledger::Ledger::open(&format!("sqlite:{}/ledger.db", dir.display()))
        .await
        .expect("ledger");
    let records = ledger
        .list(&kmssh_server::ledger::LedgerFilter::default())
        .await
        .expect("list");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].serial, certificate.as_ssh_key().serial());
    ledger.close().await;
}
