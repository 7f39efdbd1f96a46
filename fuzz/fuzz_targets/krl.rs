//! The KRL reader (`kmssh_pki::krl::Krl::from_bytes`): nothing may panic; a list that
//! reads must write a list that reads back the same (ours is canonical: the second
//! writing is byte for byte the first), and checking a certificate and a key against it
//! must answer.

#![no_main]

use std::sync::LazyLock;

use kmssh_pki::Certificate;
use kmssh_pki::krl::Krl;
use kmssh_pki::ssh_key::public::KeyData;
use libfuzzer_sys::fuzz_target;

/// A certificate (serial 42, key id `alice@example.com`, signed by `fixtures/ca.pub`) the
/// seed KRLs revoke in every way, so each answer is reachable.
static CERTIFICATE: LazyLock<Certificate> = LazyLock::new(|| {
    Certificate::from_openssh(include_str!("../fixtures/alice-cert.pub"))
        .expect("the fixture certificate parses")
});
/// Its key and its CA key, checked as plain keys.
static KEYS: LazyLock<[KeyData; 2]> = LazyLock::new(|| {
    let key = |line: &str| {
        kmssh_pki::ssh_key::PublicKey::from_openssh(line.trim())
            .expect("the fixture key parses")
            .key_data()
            .clone()
    };
    [
        key(include_str!("../fixtures/alice.pub")),
        key(include_str!("../fixtures/ca.pub")),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Ok(krl) = Krl::from_bytes(data) else {
        return;
    };
    let written = krl.to_bytes();
    let again = Krl::from_bytes(&written).expect("a KRL we wrote reads back");
    assert_eq!(again.to_bytes(), written, "writing is canonical");
    assert_eq!(again.counts(), krl.counts(), "nothing lost in writing");
    assert_eq!(
        (again.version, again.generated_date, &again.comment),
        (krl.version, krl.generated_date, &krl.comment)
    );
    let answer = krl.check_certificate(&CERTIFICATE);
    assert_eq!(again.check_certificate(&CERTIFICATE), answer);
    if let Some(why) = answer {
        let _ = why.to_string();
    }
    for key in KEYS.iter() {
        assert_eq!(again.check_key(key), krl.check_key(key));
    }
});
