//! SSH signatures (`kmssh_pki::parse_sshsig`): the input is the armored text, a NUL, and
//! the message. Nothing may panic; a signature that parses writes armor that parses back
//! to it, and is verified over the message (and its digest) against its own key.

#![no_main]

use kmssh_pki::{parse_sshsig, sshsig_to_pem, verify_sshsig, verify_sshsig_digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (armored, message) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(armored) = std::str::from_utf8(armored) else {
        return;
    };
    let Ok(signature) = parse_sshsig(armored) else {
        return;
    };
    let pem = sshsig_to_pem(&signature).expect("a parsed signature encodes");
    assert_eq!(parse_sshsig(&pem).expect("its armor parses"), signature);

    let key = signature.public_key();
    let namespace = signature.namespace();
    let verified = verify_sshsig(key, namespace, message, &signature).is_ok();
    let digest = signature.hash_alg().digest(message);
    assert_eq!(
        verify_sshsig_digest(key, namespace, &digest, &signature).is_ok(),
        verified,
        "the message and its digest verify alike"
    );
    // Another namespace never verifies.
    let other = format!("{namespace}.other");
    assert!(verify_sshsig(key, &other, message, &signature).is_err());
});
