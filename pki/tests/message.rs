//! Plain message signatures: `openssl dgst -verify` accepts what kmssh signs on every
//! curve and refuses a tampered message; kmssh accepts what openssl signs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::{Algorithm, EcPublicKey, ErrorKind, KmsKey};
use kmssh_pki::{
    Error, Field, MessageSignature, SignatureFailure, digest_reader, sign_message,
    sign_message_digest, verify_message, verify_message_digest,
};

const MESSAGE: &[u8] = b"challenge: 4f1c9a2e\n";

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

/// `openssl dgst -<hash> -verify pub.pem -signature sig.der message`.
fn openssl_verify(dir: &Path, key: &EcPublicKey, signature_der: &[u8], message: &[u8]) -> Output {
    let public = write(dir, "pub.pem", key.to_pem().expect("PEM").as_bytes());
    let signature = write(dir, "sig.der", signature_der);
    let message = write(dir, "message", message);
    let hash = format!("-{}", key.algorithm().hash_name());
    Command::new("openssl")
        .args(["dgst", &hash, "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&signature)
        .arg(&message)
        .output()
        .expect("openssl runs")
}

fn assert_verified(out: &Output, what: &str) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "{what}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn openssl_verifies_our_signatures_on_every_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    for algorithm in Algorithm::ALL {
        let key = LocalKey::generate(algorithm, LocalOptions::default()).expect("key");
        let signature = sign_message(&key, MESSAGE).await.expect("signs");
        assert_eq!(signature.algorithm(), algorithm);
        let der = signature.to_der();

        assert_verified(
            &openssl_verify(dir.path(), key.public_key(), &der, MESSAGE),
            &algorithm.to_string(),
        );
        let tampered = openssl_verify(dir.path(), key.public_key(), &der, b"challenge: 4f1c9a2f\n");
        assert!(
            !tampered.status.success(),
            "{algorithm}: openssl accepted a tampered message"
        );

        verify_message(key.public_key(), MESSAGE, &der).expect("verifies");
        let err =
            verify_message(key.public_key(), b"challenge: 4f1c9a2f\n", &der).expect_err("tampered");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
        assert!(matches!(
            err,
            Error::SignatureRejected {
                field: Field::MessageSignature,
                failure: SignatureFailure::DoesNotVerify { .. },
            }
        ));

        // base64 is the same DER.
        let decoded =
            MessageSignature::from_base64(algorithm, &signature.to_base64()).expect("base64");
        assert_eq!(decoded, signature);
        assert_eq!(
            MessageSignature::from_der(algorithm, &der).expect("DER"),
            signature
        );
    }
}

#[tokio::test]
async fn the_digest_variant_signs_a_streamed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let message: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let path = write(dir.path(), "big.bin", &message);
    for algorithm in Algorithm::ALL {
        let key = LocalKey::generate(algorithm, LocalOptions::default()).expect("key");
        let digest =
            digest_reader(algorithm, std::fs::File::open(&path).expect("open")).expect("hash");
        assert_eq!(digest.len(), algorithm.digest_len());
        let signature = sign_message_digest(&key, &digest).await.expect("signs");
        assert_verified(
            &openssl_verify(dir.path(), key.public_key(), &signature.to_der(), &message),
            &algorithm.to_string(),
        );
        verify_message_digest(key.public_key(), &digest, &signature.to_der()).expect("digest");
        verify_message(key.public_key(), &message, &signature.to_der()).expect("message");

        let err = sign_message_digest(&key, &digest[1..])
            .await
            .expect_err("short digest");
        assert_eq!(err.offending_field(), Some(Field::Digest));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

#[test]
fn openssl_signatures_verify_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (curve, hash) in [
        ("P-256", "-sha256"),
        ("P-384", "-sha384"),
        ("P-521", "-sha512"),
    ] {
        let private = dir.path().join("key.pem");
        let public = dir.path().join("pub.pem");
        let signature = dir.path().join("sig.der");
        let message = write(dir.path(), "message", MESSAGE);
        let curve_opt = format!("ec_paramgen_curve:{curve}");
        for (args, paths) in [
            (
                vec![
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &curve_opt,
                    "-out",
                ],
                vec![private.as_path()],
            ),
            (vec!["pkey", "-pubout", "-in"], vec![private.as_path()]),
        ] {
            let out = openssl(&args, &paths);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if args[0] == "pkey" {
                std::fs::write(&public, &out.stdout).expect("write public key");
            }
        }
        let out = Command::new("openssl")
            .args(["dgst", hash, "-sign"])
            .arg(&private)
            .arg("-out")
            .arg(&signature)
            .arg(&message)
            .output()
            .expect("openssl signs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let key = EcPublicKey::from_public_key_pem(
            &std::fs::read_to_string(&public).expect("public key"),
        )
        .expect("parses");
        let der = std::fs::read(&signature).expect("signature");
        verify_message(&key, MESSAGE, &der).expect(curve);
        assert!(verify_message(&key, b"other", &der).is_err(), "{curve}");
        // A truncated signature is refused, not a panic.
        let err = verify_message(&key, MESSAGE, &der[..der.len() - 1]).expect_err("truncated");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
    }
}
