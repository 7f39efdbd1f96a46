//! Public keys: OpenSSH lines (`kmssh_pki::parse_subject_key`, and `TrustedUserCAKeys`
//! files with `parse_trusted_ca_keys`) when the input is UTF-8; DER and PEM
//! `SubjectPublicKeyInfo` (`kmssh_core::PublicKey`). Nothing may panic, and what parses
//! must write a form that parses back to the same key.

#![no_main]

use kmssh_core::PublicKey;
use kmssh_core::spki::EncodePublicKey as _;
use kmssh_pki::ssh_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_public_key_der(data) {
        check_core_key(&key);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = PublicKey::from_public_key_pem(text) {
        check_core_key(&key);
    }
    if let Ok(subject) = kmssh_pki::parse_subject_key(text) {
        let line = ssh_key::PublicKey::new(subject.clone(), "")
            .to_openssh()
            .expect("a parsed subject key encodes");
        let back = kmssh_pki::parse_subject_key(&line).expect("its own line parses");
        assert_eq!(back, subject);
    }
    if let Ok(cas) = kmssh_pki::parse_trusted_ca_keys(text) {
        assert!(cas.len() <= kmssh_pki::MAX_TRUSTED_CA_KEYS);
    }
});

fn check_core_key(key: &PublicKey) {
    let pem = key.to_pem().expect("a parsed key encodes as PEM");
    assert_eq!(
        &PublicKey::from_public_key_pem(&pem).expect("its PEM parses"),
        key
    );
    let der = key
        .to_public_key_der()
        .expect("a parsed key encodes as DER");
    assert_eq!(
        &PublicKey::from_public_key_der(der.as_bytes()).expect("its DER parses"),
        key
    );
    let _ = (key.algorithms(), key.description(), key.spec());
    // The SSH form: what `kmssh pubkey` prints for it.
    let line = kmssh_pki::pubkey_string(key, "fuzz");
    let ssh = ssh_key::PublicKey::from_openssh(&line).expect("its OpenSSH line parses");
    assert_eq!(ssh.key_data(), &kmssh_pki::ssh_public_key(key));
    let _ = kmssh_pki::check_subject_key(ssh.key_data());
}
