//! SSH signatures: what kmssh signs verifies with the real `ssh-keygen -Y verify`, what
//! `ssh-keygen -Y sign` makes verifies here, and every refusal says why.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::{Algorithm, ErrorKind, KmsKey};
use kmssh_pki::ssh_key::HashAlg;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{
    Error, Field, SignatureFailure, parse_sshsig, pubkey_string, sha512_reader, sign_sshsig,
    sign_sshsig_digest, sign_sshsig_pem, ssh_public_key, sshsig_to_pem, verify_sshsig,
    verify_sshsig_digest,
};

const MESSAGE: &[u8] = b"release-1.2.3.tar.gz contents\n";

fn key(algorithm: Algorithm) -> LocalKey {
    LocalKey::generate(algorithm, LocalOptions::default()).expect("local key")
}

/// `ssh-keygen -Y verify` of `signature` over `message` for `namespace`, the signer
/// allowed for namespace `file` only.
fn ssh_keygen_verify(
    dir: &Path,
    signer: &dyn KmsKey,
    namespace: &str,
    message: &[u8],
    signature: &str,
) -> Output {
    let allowed = dir.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "release@example.com namespaces=\"file\" {}\n",
            pubkey_string(signer.public_key(), "")
        ),
    )
    .expect("write allowed_signers");
    let sig = dir.join("message.sig");
    std::fs::write(&sig, signature).expect("write signature");
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-I", "release@example.com", "-n", namespace])
        .arg("-f")
        .arg(&allowed)
        .arg("-s")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh-keygen runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), message)
        .expect("feed the message");
    child.wait_with_output().expect("ssh-keygen finishes")
}

fn rejection(result: Result<(), Error>) -> SignatureFailure {
    match result {
        Err(Error::SignatureRejected {
            field: Field::SshSignature,
            failure,
        }) => failure,
        other => panic!("expected a rejected SSH signature, got {other:?}"),
    }
}

#[tokio::test]
async fn ssh_keygen_verifies_our_signatures_on_every_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    for algorithm in Algorithm::ALL {
        let key = key(algorithm);
        let armored = sign_sshsig_pem(&key, "file", MESSAGE).await.expect("signs");
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(armored.ends_with("-----END SSH SIGNATURE-----\n"));

        let out = ssh_keygen_verify(dir.path(), &key, "file", MESSAGE, &armored);
        assert!(
            out.status.success(),
            "{algorithm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("Good \"file\" signature for release@example.com"),
            "{algorithm}: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        // The same signature is refused for another message and another namespace.
        let tampered = ssh_keygen_verify(dir.path(), &key, "file", b"other contents\n", &armored);
        assert!(!tampered.status.success(), "{algorithm}: tampered message");
        let wrong_ns = ssh_keygen_verify(dir.path(), &key, "git", MESSAGE, &armored);
        assert!(!wrong_ns.status.success(), "{algorithm}: wrong namespace");

        // And by our own verifier, which agrees.
        let signature = parse_sshsig(&armored).expect("parses");
        assert_eq!(signature.hash_alg(), HashAlg::Sha512);
        assert_eq!(signature.namespace(), "file");
        let allowed = ssh_public_key(key.public_key());
        verify_sshsig(&allowed, "file", MESSAGE, &signature).expect("verifies");
    }
}

#[tokio::test]
async fn the_digest_variant_signs_the_same_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(Algorithm::EcdsaP384Sha384);
    // A message larger than one read chunk, hashed as a stream from a file.
    let message: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &message).expect("write message");
    let digest = sha512_reader(std::fs::File::open(&path).expect("open")).expect("hash");

    let signature = sign_sshsig_digest(&key, "file", &digest)
        .await
        .expect("signs");
    let armored = sshsig_to_pem(&signature).expect("armors");
    let out = ssh_keygen_verify(dir.path(), &key, "file", &message, &armored);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let allowed = ssh_public_key(key.public_key());
    verify_sshsig(&allowed, "file", &message, &signature).expect("whole message");
    verify_sshsig_digest(&allowed, "file", &digest, &signature).expect("digest");
    let mut other = digest;
    other[0] ^= 1;
    assert!(matches!(
        rejection(verify_sshsig_digest(&allowed, "file", &other, &signature)),
        SignatureFailure::DoesNotVerify { .. }
    ));
    let short = verify_sshsig_digest(&allowed, "file", &digest[..32], &signature);
    assert!(matches!(
        short,
        Err(Error::InvalidField {
            field: Field::Digest,
            ..
        })
    ));
}

#[tokio::test]
async fn verification_refuses_wrong_namespace_message_and_key() {
    let key = key(Algorithm::EcdsaP256Sha256);
    let other = self::key(Algorithm::EcdsaP256Sha256);
    let allowed = ssh_public_key(key.public_key());
    let signature = sign_sshsig(&key, "file", MESSAGE).await.expect("signs");

    let err = verify_sshsig(&allowed, "email", MESSAGE, &signature).expect_err("namespace");
    assert_eq!(err.kind(), ErrorKind::BadSignature);
    assert_eq!(
        rejection(Err(err)),
        SignatureFailure::WrongNamespace {
            expected: "email".into(),
            found: "file".into(),
        }
    );

    let err = verify_sshsig(&allowed, "file", b"another message", &signature).expect_err("message");
    assert_eq!(err.kind(), ErrorKind::BadSignature);
    assert!(matches!(
        rejection(Err(err)),
        SignatureFailure::DoesNotVerify { .. }
    ));

    let failure = rejection(verify_sshsig(
        &ssh_public_key(other.public_key()),
        "file",
        MESSAGE,
        &signature,
    ));
    let SignatureFailure::WrongKey { signed_by, allowed } = failure else {
        panic!("expected the wrong key, got {failure:?}");
    };
    assert_ne!(signed_by, allowed);
    assert!(signed_by.starts_with("SHA256:"), "{signed_by}");
}

#[tokio::test]
async fn an_empty_namespace_is_refused_before_signing() {
    let key = key(Algorithm::EcdsaP256Sha256);
    let err = sign_sshsig(&key, "", MESSAGE).await.expect_err("empty");
    assert!(matches!(
        err,
        Error::InvalidField {
            field: Field::Namespace,
            ..
        }
    ));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let signature = sign_sshsig(&key, "file", MESSAGE).await.expect("signs");
    let err = verify_sshsig(&ssh_public_key(key.public_key()), "", MESSAGE, &signature)
        .expect_err("empty");
    assert_eq!(err.offending_field(), Some(Field::Namespace));
}

#[test]
fn signatures_made_by_ssh_keygen_verify_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(&key_path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let message_path = dir.path().join("message");
    std::fs::write(&message_path, MESSAGE).expect("write message");
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "file"])
        .arg("-f")
        .arg(&key_path)
        .arg(&message_path)
        .output()
        .expect("ssh-keygen signs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let armored = std::fs::read_to_string(dir.path().join("message.sig")).expect("signature");
    let line = std::fs::read_to_string(key_path.with_extension("pub")).expect("public key");
    let allowed: KeyData = kmssh_pki::ssh_key::PublicKey::from_openssh(line.trim())
        .expect("public key")
        .key_data()
        .clone();
    let signature = parse_sshsig(&armored).expect("parses");
    verify_sshsig(&allowed, "file", MESSAGE, &signature).expect("verifies");
    let digest = sha512_reader(MESSAGE).expect("hash");
    verify_sshsig_digest(&allowed, "file", &digest, &signature).expect("verifies by digest");
    assert!(matches!(
        rejection(verify_sshsig(&allowed, "file", b"tampered", &signature)),
        SignatureFailure::DoesNotVerify { .. }
    ));
}

#[test]
fn garbage_is_not_a_signature() {
    for text in [
        "",
        "not armored",
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
    ] {
        let err = parse_sshsig(text).expect_err("garbage");
        assert_eq!(err.offending_field(), Some(Field::SshSignature), "{text:?}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
