//! SSH signatures: what kmssh signs with ECDSA, RSA (`rsa-sha2-512`, or `rsa-sha2-256`
//! for a key bound to SHA-256) and Ed25519 keys verifies with the real
//! `ssh-keygen -Y verify` and `-Y check-novalidate`, what `ssh-keygen -Y sign` makes
//! verifies here, and every refusal says why.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Provider, SPECS, key, ssh_keygen_label};
use kmssh_core::{Algorithm, Curve, ErrorKind, KeyFamily, KeySpec, KmsKey};
use kmssh_pki::ssh_key::HashAlg;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{
    Error, Field, SignatureFailure, parse_sshsig, pubkey_string, sha512_reader, sign_sshsig,
    sign_sshsig_digest, sign_sshsig_pem, ssh_public_key, sshsig_to_pem, verify_sshsig,
    verify_sshsig_digest,
};

const MESSAGE: &[u8] = b"release-1.2.3.tar.gz contents\n";

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

/// `ssh-keygen -Y check-novalidate`: the signature is good for `message` and
/// `namespace`, whoever made it.
fn ssh_keygen_check_novalidate(
    dir: &Path,
    namespace: &str,
    message: &[u8],
    signature: &str,
) -> Output {
    let sig = dir.join("message.sig");
    std::fs::write(&sig, signature).expect("write signature");
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", namespace])
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

#[tokio::test]
async fn ssh_keygen_verifies_our_signatures_with_every_key_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    for spec in SPECS {
        let key = key(spec);
        let armored = sign_sshsig_pem(&key, "file", MESSAGE).await.expect("signs");
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(armored.ends_with("-----END SSH SIGNATURE-----\n"));

        let out = ssh_keygen_verify(dir.path(), &key, "file", MESSAGE, &armored);
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("Good \"file\" signature for release@example.com"),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let allowed = ssh_public_key(key.public_key());
        let out = ssh_keygen_check_novalidate(dir.path(), "file", MESSAGE, &armored);
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let good = format!(
            "Good \"file\" signature with {} key {}",
            ssh_keygen_label(spec),
            allowed.fingerprint(HashAlg::Sha256)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&good),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        // The same signature is refused for another message and another namespace.
        let tampered = ssh_keygen_verify(dir.path(), &key, "file", b"other contents\n", &armored);
        assert!(!tampered.status.success(), "{spec}: tampered message");
        let wrong_ns = ssh_keygen_verify(dir.path(), &key, "git", MESSAGE, &armored);
        assert!(!wrong_ns.status.success(), "{spec}: wrong namespace");
        let tampered = ssh_keygen_check_novalidate(dir.path(), "file", b"other\n", &armored);
        assert!(!tampered.status.success(), "{spec}: tampered message");

        // And by our own verifier, which agrees.
        let signature = parse_sshsig(&armored).expect("parses");
        assert_eq!(signature.hash_alg(), HashAlg::Sha512);
        assert_eq!(signature.namespace(), "file");
        // RSA signs rsa-sha2-512, as `ssh-keygen -Y sign` does.
        let expected = match spec.family() {
            KeyFamily::Rsa => "rsa-sha2-512",
            _ => spec.algorithms()[0].ssh_name().expect("SSH name"),
        };
        assert_eq!(signature.signature().algorithm().as_str(), expected);
        verify_sshsig(&allowed, "file", MESSAGE, &signature).expect("verifies");
        assert!(matches!(
            rejection(verify_sshsig(&allowed, "file", b"other", &signature)),
            SignatureFailure::DoesNotVerify { .. }
        ));
    }
}

#[tokio::test]
async fn an_rsa_key_bound_to_sha256_signs_rsa_sha2_256_sshsigs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = Provider::new(
        self::key(KeySpec::Rsa(2048)),
        &[Algorithm::RsaPkcs1Sha256],
        None,
    );
    let armored = sign_sshsig_pem(&key, "file", MESSAGE).await.expect("signs");
    let signature = parse_sshsig(&armored).expect("parses");
    assert_eq!(signature.signature().algorithm().as_str(), "rsa-sha2-256");
    let out = ssh_keygen_verify(dir.path(), &key, "file", MESSAGE, &armored);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_sshsig(
        &ssh_public_key(key.public_key()),
        "file",
        MESSAGE,
        &signature,
    )
    .expect("verifies");

    // A key bound to SHA-384 signs nothing SSH defines: refused before any call.
    let sha384 = Provider::new(
        self::key(KeySpec::Rsa(2048)),
        &[Algorithm::RsaPkcs1Sha384],
        None,
    );
    let err = sign_sshsig(&sha384, "file", MESSAGE)
        .await
        .expect_err("no SSH algorithm");
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);
    assert_eq!(sha384.inner().calls(), 0);
}

#[tokio::test]
async fn the_digest_variant_signs_the_same_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A message larger than one read chunk, hashed as a stream from a file.
    let message: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &message).expect("write message");
    let digest = sha512_reader(std::fs::File::open(&path).expect("open")).expect("hash");
    for spec in [KeySpec::Rsa(2048), KeySpec::Ed25519] {
        let key = key(spec);
        let signature = sign_sshsig_digest(&key, "file", &digest)
            .await
            .expect("signs");
        let armored = sshsig_to_pem(&signature).expect("armors");
        let out = ssh_keygen_verify(dir.path(), &key, "file", &message, &armored);
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let allowed = ssh_public_key(key.public_key());
        verify_sshsig(&allowed, "file", &message, &signature).expect("whole message");
        verify_sshsig_digest(&allowed, "file", &digest, &signature).expect("digest");
    }

    let key = key(KeySpec::Ecdsa(Curve::P384));
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
    let key = key(KeySpec::Ecdsa(Curve::P256));
    let other = self::key(KeySpec::Ed25519);
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
    let key = key(KeySpec::Rsa(2048));
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
    let message_path = dir.path().join("message");
    std::fs::write(&message_path, MESSAGE).expect("write message");
    for (name, args, algorithm) in [
        ("id_ed25519", &["-t", "ed25519"][..], "ssh-ed25519"),
        ("id_rsa", &["-t", "rsa", "-b", "3072"][..], "rsa-sha2-512"),
        (
            "id_ecdsa",
            &["-t", "ecdsa", "-b", "384"][..],
            "ecdsa-sha2-nistp384",
        ),
    ] {
        let key_path = dir.path().join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-N", ""])
            .args(args)
            .arg("-f")
            .arg(&key_path)
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
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
        std::fs::remove_file(dir.path().join("message.sig")).expect("remove");
        let line = std::fs::read_to_string(key_path.with_extension("pub")).expect("public key");
        let allowed: KeyData = kmssh_pki::ssh_key::PublicKey::from_openssh(line.trim())
            .expect("public key")
            .key_data()
            .clone();
        let signature = parse_sshsig(&armored).expect("parses");
        assert_eq!(signature.signature().algorithm().as_str(), algorithm);
        verify_sshsig(&allowed, "file", MESSAGE, &signature).expect("verifies");
        let digest = sha512_reader(MESSAGE).expect("hash");
        verify_sshsig_digest(&allowed, "file", &digest, &signature).expect("verifies by digest");
        assert!(matches!(
            rejection(verify_sshsig(&allowed, "file", b"tampered", &signature)),
            SignatureFailure::DoesNotVerify { .. }
        ));
    }
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
