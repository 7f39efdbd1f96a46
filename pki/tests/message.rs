//! Plain message signatures: `openssl` accepts what kmssh signs with every key type and
//! algorithm (`openssl dgst -verify` for ECDSA and RSA, `openssl pkeyutl -verify -rawin`
//! for Ed25519) and refuses a tampered message; kmssh accepts what openssl signs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Provider, SPECS, key};
use kmssh_core::{Algorithm, ErrorKind, HashAlgorithm, KeyFamily, KeySpec, KmsKey, PublicKey};
use kmssh_pki::{
    Error, Field, MessageSignature, SignatureFailure, digest_reader, sign_message,
    sign_message_digest, sign_message_with, verify_message, verify_message_digest,
};

const MESSAGE: &[u8] = b"challenge: 4f1c9a2e\n";
const TAMPERED: &[u8] = b"challenge: 4f1c9a2f\n";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn openssl(args: &[&str], paths: &[&Path]) -> Output {
    Command::new("openssl")
        .args(args)
        .args(paths)
        .output()
        .expect("openssl runs")
}

/// openssl's check of `signature` over `message`: `openssl dgst -<hash> -verify pub.pem
/// -signature sig message` for pre-hashed algorithms, `openssl pkeyutl -verify -pubin
/// -inkey pub.pem -rawin -in message -sigfile sig` for Ed25519.
fn openssl_verify(
    dir: &Path,
    key: &PublicKey,
    algorithm: Algorithm,
    signature: &[u8],
    message: &[u8],
) -> Output {
    let public = write(dir, "pub.pem", key.to_pem().expect("PEM").as_bytes());
    let signature = write(dir, "sig.bin", signature);
    let message = write(dir, "message", message);
    let mut command = Command::new("openssl");
    match algorithm.hash() {
        Some(hash) => command
            .args(["dgst", &format!("-{}", hash.name()), "-verify"])
            .arg(&public)
            .arg("-signature")
            .arg(&signature)
            .arg(&message),
        None => command
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(&public)
            .arg("-rawin")
            .arg("-in")
            .arg(&message)
            .arg("-sigfile")
            .arg(&signature),
    };
    command.output().expect("openssl runs")
}

fn assert_verified(out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && (stdout.contains("Verified OK")
                || stdout.contains("Signature Verified Successfully")),
        "{what}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The length of a signature in openssl's form, or `None` where it varies (DER).
fn fixed_len(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::Ecdsa(_) => None,
        KeySpec::Rsa(bits) => Some(usize::try_from(bits / 8).expect("small")),
        KeySpec::Ed25519 => Some(64),
    }
}

#[tokio::test]
async fn openssl_verifies_our_signatures_with_every_key_type_and_algorithm() {
    let dir = tempfile::tempdir().expect("tempdir");
    for spec in SPECS {
        let key = key(spec);
        // The default: the key's first algorithm (RSA: SHA-512).
        let default = sign_message(&key, MESSAGE).await.expect("signs");
        let expected_default = match spec.family() {
            KeyFamily::Rsa => Algorithm::RsaPkcs1Sha512,
            _ => spec.algorithms()[0],
        };
        assert_eq!(default.algorithm(), expected_default, "{spec}");

        for &algorithm in key.algorithms() {
            let what = format!("{spec} {algorithm}");
            let signature = sign_message_with(&key, algorithm, MESSAGE)
                .await
                .expect("signs");
            assert_eq!(signature.algorithm(), algorithm);
            let bytes = signature.to_bytes();
            if let Some(len) = fixed_len(spec) {
                assert_eq!(bytes.len(), len, "{what}");
            }

            assert_verified(
                &openssl_verify(dir.path(), key.public_key(), algorithm, &bytes, MESSAGE),
                &what,
            );
            let tampered =
                openssl_verify(dir.path(), key.public_key(), algorithm, &bytes, TAMPERED);
            assert!(
                !tampered.status.success(),
                "{what}: openssl accepted a tampered message"
            );

            verify_message(key.public_key(), algorithm, MESSAGE, &bytes).expect("verifies");
            let err = verify_message(key.public_key(), algorithm, TAMPERED, &bytes)
                .expect_err("tampered");
            assert_eq!(err.kind(), ErrorKind::BadSignature);
            assert!(matches!(
                err,
                Error::SignatureRejected {
                    field: Field::MessageSignature,
                    failure: SignatureFailure::DoesNotVerify { .. },
                }
            ));
            // A signature is checked as made: not under another of the key's hashes.
            for &other in key.algorithms().iter().filter(|a| **a != algorithm) {
                assert!(
                    verify_message(key.public_key(), other, MESSAGE, &bytes).is_err(),
                    "{what} accepted as {other}"
                );
            }

            // base64 is the same bytes.
            let decoded =
                MessageSignature::from_base64(algorithm, &signature.to_base64()).expect("base64");
            assert_eq!(decoded, signature);
            assert_eq!(
                MessageSignature::from_bytes(algorithm, &bytes).expect("bytes"),
                signature
            );
        }
    }
}

#[tokio::test]
async fn the_digest_variant_signs_a_streamed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let message: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let path = write(dir.path(), "big.bin", &message);
    for spec in SPECS {
        let key = key(spec);
        for &algorithm in key.algorithms() {
            let what = format!("{spec} {algorithm}");
            let Some(hash) = algorithm.hash() else {
                continue;
            };
            let digest =
                digest_reader(hash, std::fs::File::open(&path).expect("open")).expect("hash");
            assert_eq!(digest.len(), hash.len());
            let signature = sign_message_digest(&key, algorithm, &digest)
                .await
                .expect("signs");
            let bytes = signature.to_bytes();
            assert_verified(
                &openssl_verify(dir.path(), key.public_key(), algorithm, &bytes, &message),
                &what,
            );
            verify_message_digest(key.public_key(), algorithm, &digest, &bytes).expect("digest");
            verify_message(key.public_key(), algorithm, &message, &bytes).expect("message");
            if spec.family() == KeyFamily::Rsa {
                // Deterministic: the same as signing the message itself.
                let whole = sign_message_with(&key, algorithm, &message)
                    .await
                    .expect("signs");
                assert_eq!(whole, signature, "{what}");
            }

            let err = sign_message_digest(&key, algorithm, &digest[1..])
                .await
                .expect_err("short digest");
            assert_eq!(err.offending_field(), Some(Field::Digest), "{what}");
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            let err = verify_message_digest(key.public_key(), algorithm, &digest[1..], &bytes)
                .expect_err("short digest");
            assert_eq!(err.offending_field(), Some(Field::Digest), "{what}");
        }
    }
}

#[tokio::test]
async fn ed25519_signs_messages_not_digests() {
    let key = Provider::unbound(key(KeySpec::Ed25519));
    for hash in [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ] {
        let digest = hash.digest(MESSAGE);
        let err = sign_message_digest(&key, Algorithm::Ed25519, &digest)
            .await
            .expect_err("a digest for Ed25519");
        assert_eq!(err.offending_field(), Some(Field::Digest), "{hash}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("signs the message itself"),
            "{err}"
        );
        let err = verify_message_digest(key.public_key(), Algorithm::Ed25519, &digest, &[0; 64])
            .expect_err("a digest for Ed25519");
        assert_eq!(err.offending_field(), Some(Field::Digest));
    }
    assert_eq!(key.inner().calls(), 0, "nothing was signed");

    // An algorithm the key does not sign is refused by the key, before the provider.
    let err = sign_message_with(&key, Algorithm::RsaPkcs1Sha256, MESSAGE)
        .await
        .expect_err("not an RSA key");
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);
    assert_eq!(key.inner().calls(), 0);

    let signature = sign_message(&key, MESSAGE).await.expect("signs");
    assert_eq!(signature.algorithm(), Algorithm::Ed25519);
    assert_eq!(key.inner().calls(), 1);
    verify_message(
        key.public_key(),
        Algorithm::Ed25519,
        MESSAGE,
        &signature.to_bytes(),
    )
    .expect("verifies");
}

/// `openssl genpkey` arguments, and how openssl signs with that key: `dgst -<hash>`, or
/// `pkeyutl -rawin` for Ed25519.
const OPENSSL_KEYS: [(&str, &[&str], Algorithm); 7] = [
    (
        "P-256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        Algorithm::EcdsaP256Sha256,
    ),
    (
        "P-384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        Algorithm::EcdsaP384Sha384,
    ),
    (
        "P-521",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
        Algorithm::EcdsaP521Sha512,
    ),
    (
        "RSA-2048 SHA-256",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        Algorithm::RsaPkcs1Sha256,
    ),
    (
        "RSA-2048 SHA-384",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        Algorithm::RsaPkcs1Sha384,
    ),
    (
        "RSA-3072 SHA-512",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
        Algorithm::RsaPkcs1Sha512,
    ),
    ("Ed25519", &["-algorithm", "ed25519"], Algorithm::Ed25519),
];

#[test]
fn openssl_signatures_verify_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("key.pem");
    let signature = dir.path().join("sig.bin");
    let message = write(dir.path(), "message", MESSAGE);
    for (name, genpkey, algorithm) in OPENSSL_KEYS {
        let out = openssl(
            &[&["genpkey"][..], genpkey, &["-out"]].concat(),
            &[&private],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = openssl(&["pkey", "-pubout", "-in"], &[&private]);
        assert!(out.status.success());
        let public = String::from_utf8(out.stdout).expect("PEM");
        let mut command = Command::new("openssl");
        match algorithm.hash() {
            Some(hash) => command
                .args(["dgst", &format!("-{}", hash.name()), "-sign"])
                .arg(&private)
                .arg("-out")
                .arg(&signature)
                .arg(&message),
            None => command
                .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
                .arg(&private)
                .arg("-in")
                .arg(&message)
                .arg("-out")
                .arg(&signature),
        };
        let out = command.output().expect("openssl signs");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let key = PublicKey::from_public_key_pem(&public).expect("parses");
        let bytes = std::fs::read(&signature).expect("signature");
        verify_message(&key, algorithm, MESSAGE, &bytes).expect(name);
        assert!(
            verify_message(&key, algorithm, b"other", &bytes).is_err(),
            "{name}"
        );
        // A truncated signature is refused, not a panic.
        let err = verify_message(&key, algorithm, MESSAGE, &bytes[..bytes.len() - 1])
            .expect_err("truncated");
        assert_eq!(err.kind(), ErrorKind::BadSignature, "{name}");
        // Nor does it verify under another algorithm of the family.
        for other in key.algorithms().iter().filter(|a| **a != algorithm) {
            assert!(
                verify_message(&key, *other, MESSAGE, &bytes).is_err(),
                "{name} as {other}"
            );
        }
    }
}
