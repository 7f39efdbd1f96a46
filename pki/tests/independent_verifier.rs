//! Thousands of signatures per key type, each checked by a verifier that is not kmssh's:
//! `ssh-key`'s `Verifier` over the SSH form. Half are certificates, checked by `ssh-key`'s
//! own `Certificate::validate_at` (its encoding of the signed fields, its signature
//! check); half are raw SSH signatures over messages of every length up to a few KiB.
//! Every signing engine compiled into the local backend takes its turn (RustCrypto
//! always; AWS-LC with `kmssh-backend-local/aws-lc`, whose signatures then meet
//! RustCrypto's verifier); RSA keys alternate `rsa-sha2-512` and `rsa-sha2-256`.

use std::time::Instant;

use kmssh_backend_local::{LocalKey, LocalOptions, SecretKey, SigningEngine, ephemeral_uri};
use kmssh_core::{Algorithm, Curve, KeyFamily, KeySpec, KmsKey as _, SigningInput};
use kmssh_pki::ssh_key::HashAlg;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{
    CertificateParameters, issue_at, parse_subject_key, ssh_public_key, ssh_signature,
};
use signature::Verifier as _;

const NOW: u64 = 1_750_000_000;

/// Signatures per key type the issue asks for.
const PER_KEY_TYPE: usize = 2_000;

/// One key of kind `spec`, once per signing engine compiled in.
fn keys(spec: KeySpec) -> Vec<LocalKey> {
    let secret = SecretKey::generate(spec).expect("generates");
    SigningEngine::available()
        .iter()
        .map(|&engine| {
            let options = LocalOptions {
                engine: Some(engine),
                // The check under test is the independent one below, not the key's own.
                verify: false,
                ..LocalOptions::default()
            };
            LocalKey::from_secret(ephemeral_uri(spec).expect("uri"), &secret, options).expect("key")
        })
        .collect()
}

/// The SSH algorithms `spec` signs with, taken in turn.
fn ssh_algorithms(spec: KeySpec) -> Vec<Algorithm> {
    match spec.family() {
        KeyFamily::Rsa => vec![Algorithm::RsaPkcs1Sha512, Algorithm::RsaPkcs1Sha256],
        _ => spec.algorithms().to_vec(),
    }
}

/// A message of `len` bytes that differs from one signature to the next.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| u8::try_from((i * 31 + j * 7) % 251).expect("below 251"))
        .collect()
}

/// `count` signatures by keys of kind `spec`, every one checked by `ssh-key`; a tampered
/// copy of every 50th must fail, so the checks cannot pass vacuously.
async fn check(spec: KeySpec, count: usize) {
    let started = Instant::now();
    let keys = keys(spec);
    let public = keys[0].public_key();
    let ca_key: KeyData = ssh_public_key(public);
    let fingerprint = ca_key.fingerprint(HashAlg::Sha256);
    let algorithms = ssh_algorithms(spec);
    let subject = parse_subject_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR",
    )
    .expect("subject");
    let (mut certificates, mut raw, mut tampered) = (0, 0, 0);

    for i in 0..count {
        let key = &keys[i % keys.len()];
        let algorithm = algorithms[(i / keys.len()) % algorithms.len()];
        let what = format!("{spec} {algorithm} {} #{i}", key.engine());
        if i % 2 == 0 {
            let mut params = CertificateParameters::user();
            params
                .principal(format!("user{i}"))
                .and_then(|p| p.ca_signature_algorithm_is(algorithm))
                .expect("params");
            let cert = issue_at(key, &subject, &params, NOW)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let theirs = cert.as_ssh_key();
            assert_eq!(
                theirs.signature().algorithm().as_str(),
                algorithm.ssh_name().expect("SSH name"),
                "{what}"
            );
            theirs
                .validate_at(NOW, [&fingerprint])
                .unwrap_or_else(|e| panic!("{what}: ssh-key refuses the certificate: {e}"));
            certificates += 1;
            if i % 50 == 0 {
                let mut bytes = cert.as_bytes().to_vec();
                // A byte of the nonce, inside the signed fields.
                bytes[40] ^= 0x20;
                let forged = kmssh_pki::ssh_key::Certificate::from_bytes(&bytes).expect("parses");
                assert!(forged.validate_at(NOW, [&fingerprint]).is_err(), "{what}");
                tampered += 1;
            }
        } else {
            let message = message(i, (i * 13) % 4096);
            let signature = key
                .sign_sync(algorithm, SigningInput::Message(&message))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let ssh = ssh_signature(&signature).expect("SSH form");
            ca_key
                .verify(&message, &ssh)
                .unwrap_or_else(|e| panic!("{what}: ssh-key refuses the signature: {e}"));
            raw += 1;
            if i % 50 == 1 {
                let mut other = message.clone();
                other.push(0);
                assert!(ca_key.verify(&other, &ssh).is_err(), "{what}");
                tampered += 1;
            }
        }
    }
    assert_eq!(certificates + raw, count);
    eprintln!(
        "{spec}: {count} signatures ({certificates} certificates, {raw} raw; {tampered} tampered copies refused) checked by ssh-key in {:.1?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn p256_signatures_verify_independently() {
    check(KeySpec::Ecdsa(Curve::P256), PER_KEY_TYPE).await;
}

#[tokio::test]
async fn p384_signatures_verify_independently() {
    check(KeySpec::Ecdsa(Curve::P384), PER_KEY_TYPE).await;
}

#[tokio::test]
async fn p521_signatures_verify_independently() {
    check(KeySpec::Ecdsa(Curve::P521), PER_KEY_TYPE).await;
}

#[tokio::test]
async fn rsa_2048_signatures_verify_independently() {
    check(KeySpec::Rsa(2048), PER_KEY_TYPE).await;
}

/// Fewer: each RSA-4096 signature costs about 8 times an RSA-2048 one, and the size
/// changes nothing in the encoding beyond what RSA-2048 exercises.
#[tokio::test]
async fn rsa_4096_signatures_verify_independently() {
    check(KeySpec::Rsa(4096), 250).await;
}

#[tokio::test]
async fn ed25519_signatures_verify_independently() {
    check(KeySpec::Ed25519, PER_KEY_TYPE).await;
}
