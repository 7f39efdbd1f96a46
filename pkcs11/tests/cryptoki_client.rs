//! The module loaded in-process by a client written with the `cryptoki` crate: what it
//! says about itself, its objects and their attributes, and signatures from every
//! mechanism checked against the key files' public keys (also from 8 threads at once).
//!
//! One token for the whole binary (PKCS#11 state is per process): P-256, P-384, P-521,
//! RSA-2048 and Ed25519 keys.

mod support;

use std::sync::OnceLock;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use kmssh_core::rsa::traits::PublicKeyParts as _;
use kmssh_core::{
    Algorithm, EcPublicKey, EcdsaSignature, HashAlgorithm, PublicKey, RsaSignature, Signature,
};
use sha2::Digest as _;
use support::{ALL_SPECS, KeySet};

struct Fixture {
    set: KeySet,
    pkcs11: Pkcs11,
    slot: Slot,
}

/// Sets the configuration path, then loads and initialises the module, once.
#[allow(unsafe_code)]
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let set = KeySet::new(&ALL_SPECS, "timeout = \"10s\"\n");
        // SAFETY: every test calls `fixture()` first and waits on this `OnceLock`, so no
        // other thread of this binary reads the environment while it is written.
        unsafe { std::env::set_var("KMSSH_PKCS11_CONFIG", &set.config) };
        let pkcs11 = Pkcs11::new(support::module_path()).expect("load the module");
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        let slots = pkcs11.get_slots_with_token().expect("C_GetSlotList");
        assert_eq!(slots.len(), 1, "one slot");
        Fixture {
            set,
            pkcs11,
            slot: slots[0],
        }
    })
}

fn session() -> Session {
    let f = fixture();
    f.pkcs11.open_ro_session(f.slot).expect("C_OpenSession")
}

fn find(session: &Session, template: &[Attribute]) -> Vec<ObjectHandle> {
    session.find_objects(template).expect("C_FindObjects")
}

fn private_key(session: &Session, label: &str) -> ObjectHandle {
    let found = find(
        session,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
    );
    assert_eq!(found.len(), 1, "one private key labelled {label}");
    found[0]
}

fn rv_of(error: CkError) -> RvError {
    match error {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 return value: {other}"),
    }
}

/// The default CKA_ID, computed here from the OpenSSH line rather than by the module's code.
fn expected_id(key: &PublicKey) -> Vec<u8> {
    let line = kmssh_pki::pubkey_string(key, "");
    let parsed = kmssh_pki::ssh_key::PublicKey::from_openssh(&line).expect("OpenSSH line");
    let blob = parsed.to_bytes().expect("key blob");
    sha2::Sha256::digest(&blob)[..16].to_vec()
}

/// The library, slot and token describe a kmssh token that needs no login.
#[test]
fn library_slot_and_token_info() {
    let f = fixture();
    let info = f.pkcs11.get_library_info().expect("C_GetInfo");
    assert_eq!(info.manufacturer_id(), "kmssh");
    assert!(info.library_description().starts_with("kmssh"));
    let slot = f.pkcs11.get_slot_info(f.slot).expect("C_GetSlotInfo");
    assert_eq!(slot.manufacturer_id(), "kmssh");
    let token = f.pkcs11.get_token_info(f.slot).expect("C_GetTokenInfo");
    assert_eq!(token.label(), "kmssh");
    assert!(token.token_initialized());
    assert!(!token.login_required(), "ssh must not ask for a PIN");
    assert!(token.rng());
    let _open = session();
    let token = f.pkcs11.get_token_info(f.slot).expect("C_GetTokenInfo");
    assert!(token.session_count().is_some_and(|n| n >= 1));
}

/// Every signing mechanism is listed with its key sizes and the sign flag.
#[test]
fn mechanisms_and_their_info() {
    let f = fixture();
    let list = f
        .pkcs11
        .get_mechanism_list(f.slot)
        .expect("C_GetMechanismList");
    for mechanism in [
        MechanismType::ECDSA,
        MechanismType::ECDSA_SHA256,
        MechanismType::ECDSA_SHA384,
        MechanismType::ECDSA_SHA512,
        MechanismType::RSA_PKCS,
        MechanismType::SHA256_RSA_PKCS,
        MechanismType::SHA384_RSA_PKCS,
        MechanismType::SHA512_RSA_PKCS,
        MechanismType::EDDSA,
    ] {
        assert!(list.contains(&mechanism), "{mechanism} listed");
        let info = f
            .pkcs11
            .get_mechanism_info(f.slot, mechanism)
            .expect("C_GetMechanismInfo");
        assert!(info.sign() && info.hardware(), "{mechanism}: {info:?}");
    }
    let ecdsa = f
        .pkcs11
        .get_mechanism_info(f.slot, MechanismType::ECDSA)
        .expect("info");
    assert_eq!((ecdsa.min_key_size(), ecdsa.max_key_size()), (256, 521));
    let rsa = f
        .pkcs11
        .get_mechanism_info(f.slot, MechanismType::RSA_PKCS)
        .expect("info");
    assert_eq!((rsa.min_key_size(), rsa.max_key_size()), (2048, 8192));
    assert_eq!(
        f.pkcs11
            .get_mechanism_info(f.slot, MechanismType::SHA1_RSA_PKCS)
            .map_err(rv_of)
            .expect_err("SHA-1 is not offered"),
        RvError::MechanismInvalid
    );
}

/// Searches by class, label, id, key type and usage find exactly the matching objects.
#[test]
fn find_objects_by_template() {
    let f = fixture();
    let s = session();
    assert_eq!(find(&s, &[]).len(), 10, "two objects per key");
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).len(),
        5
    );
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]).len(),
        5
    );
    assert_eq!(find(&s, &[Attribute::KeyType(KeyType::EC)]).len(), 6);
    assert_eq!(
        find(&s, &[Attribute::KeyType(KeyType::EC_EDWARDS)]).len(),
        2
    );
    assert_eq!(find(&s, &[Attribute::Sign(true)]).len(), 5);
    assert_eq!(find(&s, &[Attribute::Private(false)]).len(), 10);
    assert!(find(&s, &[Attribute::Class(ObjectClass::CERTIFICATE)]).is_empty());
    assert!(find(&s, &[Attribute::Label(b"nobody".to_vec())]).is_empty());
    for key in &f.set.keys {
        let by_label = find(&s, &[Attribute::Label(key.label.as_bytes().to_vec())]);
        let by_id = find(&s, &[Attribute::Id(expected_id(&key.public_key))]);
        assert_eq!(by_label.len(), 2, "{}", key.label);
        assert_eq!(
            by_label, by_id,
            "{}: label and id name the same objects",
            key.label
        );
        // What ssh searches for when it signs: the private key with the id and CKA_SIGN.
        let ssh = find(
            &s,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(expected_id(&key.public_key)),
                Attribute::Sign(true),
            ],
        );
        assert_eq!(ssh.len(), 1, "{}", key.label);
    }
}

/// Both objects of every key carry its public key, id and label, and the private key's
/// flags say it never leaves.
#[test]
fn attributes_match_the_keys() {
    let f = fixture();
    let s = session();
    for key in &f.set.keys {
        let label = key.label.as_bytes().to_vec();
        let id = expected_id(&key.public_key);
        for class in [ObjectClass::PUBLIC_KEY, ObjectClass::PRIVATE_KEY] {
            let objects = find(
                &s,
                &[Attribute::Class(class), Attribute::Label(label.clone())],
            );
            assert_eq!(objects.len(), 1);
            let common = s
                .get_attributes(
                    objects[0],
                    &[
                        AttributeType::Class,
                        AttributeType::Id,
                        AttributeType::Label,
                        AttributeType::Token,
                        AttributeType::Private,
                        AttributeType::Modifiable,
                    ],
                )
                .expect("C_GetAttributeValue");
            assert_eq!(
                common,
                vec![
                    Attribute::Class(class),
                    Attribute::Id(id.clone()),
                    Attribute::Label(label.clone()),
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Modifiable(false),
                ],
                "{} {class}",
                key.label
            );
            let spki = s
                .get_attributes(objects[0], &[AttributeType::PublicKeyInfo])
                .expect("CKA_PUBLIC_KEY_INFO");
            assert_eq!(
                PublicKey::from_public_key_der(match &spki[..] {
                    [Attribute::PublicKeyInfo(der)] => der,
                    other => panic!("{other:?}"),
                })
                .expect("SPKI"),
                key.public_key
            );
            check_key_material(&s, objects[0], &key.public_key);
        }
        let private = private_key(&s, &key.label);
        let flags = s
            .get_attributes(
                private,
                &[
                    AttributeType::Sign,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )
            .expect("flags");
        assert_eq!(
            flags,
            vec![
                Attribute::Sign(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::AlwaysSensitive(true),
                Attribute::NeverExtractable(true),
            ]
        );
    }
}

/// The key material attributes, compared with encodings made here.
fn check_key_material(s: &Session, object: ObjectHandle, key: &PublicKey) {
    match key {
        PublicKey::Ecdsa(k) => {
            let point = k.to_sec1_bytes();
            let mut octet = vec![0x04];
            if point.len() > 127 {
                octet.push(0x81);
            }
            octet.push(u8::try_from(point.len()).expect("short point"));
            octet.extend_from_slice(&point);
            let oid: &[u8] = match k {
                EcPublicKey::P256(_) => {
                    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
                }
                EcPublicKey::P384(_) => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
                EcPublicKey::P521(_) => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
            };
            let got = s
                .get_attributes(
                    object,
                    &[
                        AttributeType::KeyType,
                        AttributeType::EcParams,
                        AttributeType::EcPoint,
                    ],
                )
                .expect("EC attributes");
            assert_eq!(
                got,
                vec![
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcParams(oid.to_vec()),
                    Attribute::EcPoint(octet)
                ]
            );
        }
        PublicKey::Rsa(k) => {
            let got = s
                .get_attributes(
                    object,
                    &[
                        AttributeType::KeyType,
                        AttributeType::Modulus,
                        AttributeType::PublicExponent,
                        AttributeType::ModulusBits,
                    ],
                )
                .expect("RSA attributes");
            assert_eq!(
                got,
                vec![
                    Attribute::KeyType(KeyType::RSA),
                    Attribute::Modulus(k.n_bytes().to_vec()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::ModulusBits(2048.into()),
                ]
            );
        }
        PublicKey::Ed25519(k) => {
            let mut octet = vec![0x04, 0x20];
            octet.extend_from_slice(k.as_bytes());
            let got = s
                .get_attributes(
                    object,
                    &[
                        AttributeType::KeyType,
                        AttributeType::EcParams,
                        AttributeType::EcPoint,
                    ],
                )
                .expect("Ed25519 attributes");
            assert_eq!(
                got,
                vec![
                    Attribute::KeyType(KeyType::EC_EDWARDS),
                    Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70]),
                    Attribute::EcPoint(octet)
                ]
            );
        }
    }
}

fn digest_info(hash: HashAlgorithm, digest: &[u8]) -> Vec<u8> {
    let oid_last = match hash {
        HashAlgorithm::Sha256 => 1,
        HashAlgorithm::Sha384 => 2,
        HashAlgorithm::Sha512 => 3,
    };
    let len = u8::try_from(digest.len()).expect("digest");
    let mut info = vec![
        0x30,
        17 + len,
        0x30,
        0x0d,
        0x06,
        0x09,
        0x60,
        0x86,
        0x48,
        0x01,
        0x65,
        0x03,
        0x04,
        0x02,
        oid_last,
        0x05,
        0x00,
        0x04,
        len,
    ];
    info.extend_from_slice(digest);
    info
}

/// Checks an ECDSA `r‖s` over `digest` (any length: RustCrypto fits it as X9.62 says).
fn verify_ecdsa(key: &PublicKey, digest: &[u8], signature: &[u8]) {
    let PublicKey::Ecdsa(k) = key else {
        panic!("not ECDSA")
    };
    let parsed =
        EcdsaSignature::from_fixed(k.curve(), signature).expect("r||s of the curve's width");
    k.verify_digest(digest, &parsed)
        .expect("ECDSA signature verifies");
}

/// ECDSA signatures from every mechanism verify against the key file's public key: raw
/// digests of the curve's own hash and of another, and messages hashed by the token.
#[test]
fn ecdsa_signatures_verify() {
    let f = fixture();
    let s = session();
    let message = b"kmssh pkcs11 ecdsa";
    for label in ["p256", "p384", "p521"] {
        let key = &f.set.key(label).public_key;
        let handle = private_key(&s, label);
        let own = key.algorithms()[0]
            .digest(message)
            .expect("prehashed")
            .to_vec();
        let raw = s.sign(&Mechanism::Ecdsa, handle, &own).expect("CKM_ECDSA");
        verify_ecdsa(key, &own, &raw);
        for (mechanism, hash) in [
            (Mechanism::EcdsaSha256, HashAlgorithm::Sha256),
            (Mechanism::EcdsaSha384, HashAlgorithm::Sha384),
            (Mechanism::EcdsaSha512, HashAlgorithm::Sha512),
        ] {
            let signature = s.sign(&mechanism, handle, message).expect("hash and sign");
            // P-521 over SHA-256 is a valid X9.62 signature, but RustCrypto's verifier
            // refuses digests under half the field; the others are checked here.
            if label == "p521" && hash == HashAlgorithm::Sha256 {
                assert_eq!(signature.len(), 132);
                continue;
            }
            verify_ecdsa(key, &hash.digest(message), &signature);
        }
    }
    // A SHA-384 digest on P-256 is cut to 256 bits, as X9.62 does.
    let key = &f.set.key("p256").public_key;
    let digest = HashAlgorithm::Sha384.digest(message);
    let signature = s
        .sign(&Mechanism::Ecdsa, private_key(&s, "p256"), &digest)
        .expect("sign");
    verify_ecdsa(key, &digest, &signature);
    // Longer than any digest: refused.
    assert_eq!(
        rv_of(
            s.sign(&Mechanism::Ecdsa, private_key(&s, "p256"), &[1; 65])
                .expect_err("65 bytes")
        ),
        RvError::DataLenRange
    );
}

/// RSA signatures over DigestInfos (what ssh sends) and over messages verify; SHA-1 and
/// raw data are refused.
#[test]
fn rsa_signatures_verify() {
    let f = fixture();
    let s = session();
    let key = &f.set.key("rsa2048").public_key;
    let handle = private_key(&s, "rsa2048");
    let message = b"kmssh pkcs11 rsa";
    for (hash, algorithm, mechanism) in [
        (
            HashAlgorithm::Sha256,
            Algorithm::RsaPkcs1Sha256,
            Mechanism::Sha256RsaPkcs,
        ),
        (
            HashAlgorithm::Sha384,
            Algorithm::RsaPkcs1Sha384,
            Mechanism::Sha384RsaPkcs,
        ),
        (
            HashAlgorithm::Sha512,
            Algorithm::RsaPkcs1Sha512,
            Mechanism::Sha512RsaPkcs,
        ),
    ] {
        let digest = hash.digest(message);
        let raw = s
            .sign(&Mechanism::RsaPkcs, handle, &digest_info(hash, &digest))
            .expect("CKM_RSA_PKCS");
        assert_eq!(raw.len(), 256);
        let signature = Signature::Rsa(RsaSignature::new(hash, raw.clone()).expect("bytes"));
        key.verify(algorithm, &digest, &signature)
            .expect("DigestInfo signature verifies");
        // PKCS#1 v1.5 is deterministic: hash-and-sign gives the same bytes.
        assert_eq!(
            s.sign(&mechanism, handle, message).expect("hash and sign"),
            raw
        );
    }
    let sha1 = {
        let mut info = vec![
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ];
        info.extend_from_slice(&[7; 20]);
        info
    };
    for refused in [&sha1[..], b"raw data, not a DigestInfo"] {
        assert_eq!(
            rv_of(
                s.sign(&Mechanism::RsaPkcs, handle, refused)
                    .expect_err("refused")
            ),
            RvError::DataInvalid
        );
    }
}

/// Ed25519 signs the whole message, with no parameters or explicit pure-EdDSA ones.
#[test]
fn eddsa_signatures_verify() {
    let f = fixture();
    let s = session();
    let key = &f.set.key("ed25519").public_key;
    let handle = private_key(&s, "ed25519");
    let message = b"kmssh pkcs11 ed25519, signed whole";
    for scheme in [EddsaSignatureScheme::Pure, EddsaSignatureScheme::Ed25519] {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(scheme));
        let raw = s.sign(&mechanism, handle, message).expect("CKM_EDDSA");
        let signature = Signature::Ed25519(
            kmssh_core::ed25519_dalek::Signature::from_slice(&raw).expect("64 bytes"),
        );
        key.verify(Algorithm::Ed25519, message, &signature)
            .expect("verifies");
    }
    let ph = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(&[])));
    assert_eq!(
        rv_of(s.sign(&ph, handle, message).expect_err("prehash refused")),
        RvError::MechanismParamInvalid
    );
}

/// A mechanism of another key type, or a public key, cannot start a signature.
#[test]
fn wrong_key_for_mechanism() {
    let s = session();
    let cases = [
        (Mechanism::Ecdsa, "rsa2048", RvError::KeyTypeInconsistent),
        (Mechanism::RsaPkcs, "p256", RvError::KeyTypeInconsistent),
        (
            Mechanism::Sha256RsaPkcs,
            "ed25519",
            RvError::KeyTypeInconsistent,
        ),
        (
            Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            "p384",
            RvError::KeyTypeInconsistent,
        ),
    ];
    for (mechanism, label, want) in cases {
        let got = rv_of(
            s.sign_init(&mechanism, private_key(&s, label))
                .expect_err("refused"),
        );
        assert_eq!(got, want, "{mechanism:?} on {label}");
    }
    let public = find(
        &s,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(b"p256".to_vec()),
        ],
    );
    assert_eq!(
        rv_of(
            s.sign_init(&Mechanism::Ecdsa, public[0])
                .expect_err("public key")
        ),
        RvError::KeyFunctionNotPermitted
    );
}

/// Multi-part hash-and-sign gives the single-part signature.
#[test]
fn multi_part_signing() {
    let s = session();
    let handle = private_key(&s, "rsa2048");
    let message = b"one part, two parts, three parts";
    let whole = s
        .sign(&Mechanism::Sha512RsaPkcs, handle, message)
        .expect("single");
    s.sign_init(&Mechanism::Sha512RsaPkcs, handle)
        .expect("init");
    for part in message.chunks(7) {
        s.sign_update(part).expect("update");
    }
    assert_eq!(s.sign_final().expect("final"), whole);
}

/// Eight threads, each with its own session, sign at once; every signature verifies.
#[test]
fn eight_threads_sign_at_once() {
    let f = fixture();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let s = f.pkcs11.open_rw_session(f.slot).expect("session");
                let label = if t % 2 == 0 { "p256" } else { "rsa2048" };
                let key = &f.set.key(label).public_key;
                let handle = private_key(&s, label);
                for i in 0..25 {
                    let message = format!("thread {t} message {i}");
                    if label == "p256" {
                        let signature = s
                            .sign(&Mechanism::EcdsaSha256, handle, message.as_bytes())
                            .expect("sign");
                        verify_ecdsa(
                            key,
                            &HashAlgorithm::Sha256.digest(message.as_bytes()),
                            &signature,
                        );
                    } else {
                        let signature = s
                            .sign(&Mechanism::Sha256RsaPkcs, handle, message.as_bytes())
                            .expect("sign");
                        let signature = Signature::Rsa(
                            RsaSignature::new(HashAlgorithm::Sha256, signature).expect("bytes"),
                        );
                        key.verify(
                            Algorithm::RsaPkcs1Sha256,
                            &HashAlgorithm::Sha256.digest(message.as_bytes()),
                            &signature,
                        )
                        .expect("verifies");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("signing thread");
    }
}

/// Login is not needed, but a client that logs in anyway (any PIN) is let in once.
#[test]
fn login_is_accepted_without_a_pin_check() {
    let s = session();
    let info = s.get_session_info().expect("info");
    assert!(!info.read_write());
    let _ = s.logout();
    s.login(cryptoki::session::UserType::User, Some(&"any".into()))
        .expect("login");
    assert_eq!(
        rv_of(
            s.login(cryptoki::session::UserType::User, Some(&"any".into()))
                .expect_err("twice")
        ),
        RvError::UserAlreadyLoggedIn
    );
    s.logout().expect("logout");
}

/// A slow signature (Ed25519 over 48 MiB, hashed twice by the key) holds up neither
/// another session's attribute reads nor its searches: no lock is held while a key signs.
#[test]
fn a_slow_signature_blocks_no_other_session() {
    let f = fixture();
    let message = vec![0x5a; 48 * 1024 * 1024];
    let signer = std::thread::spawn(move || {
        let s = f.pkcs11.open_rw_session(f.slot).expect("session");
        let handle = private_key(&s, "ed25519");
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let started = std::time::Instant::now();
        let signature = s.sign(&mechanism, handle, &message).expect("sign 48 MiB");
        let took = started.elapsed();
        let signature = Signature::Ed25519(
            kmssh_core::ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes"),
        );
        f.set
            .key("ed25519")
            .public_key
            .verify(Algorithm::Ed25519, &message, &signature)
            .expect("verifies");
        took
    });
    let s = session();
    let public = find(
        &s,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(b"ed25519".to_vec()),
        ],
    )[0];
    let mut slowest = std::time::Duration::ZERO;
    let mut calls = 0;
    while !signer.is_finished() {
        let started = std::time::Instant::now();
        let attributes = s
            .get_attributes(public, &[AttributeType::EcPoint, AttributeType::Label])
            .expect("C_GetAttributeValue while another session signs");
        assert_eq!(attributes.len(), 2);
        slowest = slowest.max(started.elapsed());
        calls += 1;
    }
    let took = signer.join().expect("signer");
    eprintln!(
        "48 MiB Ed25519 signature: {took:?}; {calls} attribute reads meanwhile, slowest {slowest:?}"
    );
    assert!(calls > 10, "{calls} reads during a {took:?} signature");
    assert!(
        slowest < std::time::Duration::from_millis(200),
        "an attribute read waited {slowest:?} during a {took:?} signature"
    );
}
