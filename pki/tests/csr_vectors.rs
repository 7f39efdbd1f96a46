//! paramiko-cloud's serialized requests decode to exactly their listed fields, encode
//! back byte for byte, and malformed requests are refused with the field named.

use base64ct::{Base64, Encoding};
use kmssh_pki::{CertificateSigningRequest, CertificateType, CriticalOption, Extension, Field};

fn vectors() -> Vec<serde_json::Value> {
    let text = include_str!("vectors/paramiko-cloud-csr.json");
    serde_json::from_str(text).expect("vector file parses")
}

fn decode_b64(s: &str) -> Vec<u8> {
    Base64::decode_vec(s).expect("base64")
}

#[test]
fn every_paramiko_cloud_vector_decodes_to_its_fields_and_round_trips() {
    let vectors = vectors();
    assert!(!vectors.is_empty());
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        let bytes = decode_b64(v["csr_protobuf_base64"].as_str().expect("b64"));
        let csr =
            CertificateSigningRequest::from_proto(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));

        let expected_type = match v["type"].as_str() {
            Some("USER") => CertificateType::User,
            Some("HOST") => CertificateType::Host,
            other => panic!("{name}: type {other:?}"),
        };
        assert_eq!(csr.cert_type, expected_type, "{name}");
        assert_eq!(csr.key_id, v["key_id"].as_str().expect("key_id"), "{name}");
        assert_eq!(csr.serial, v["serial"].as_u64().expect("serial"), "{name}");
        let principals: Vec<String> =
            serde_json::from_value(v["principals"].clone()).expect("principals");
        assert_eq!(csr.principals, principals, "{name}");
        assert_eq!(
            csr.valid_after,
            v["valid_after"].as_u64().expect("va"),
            "{name}"
        );
        assert_eq!(
            csr.valid_before,
            v["valid_before"].as_u64().expect("vb"),
            "{name}"
        );

        let options: std::collections::BTreeMap<String, String> =
            serde_json::from_value(v["critical_options"].clone()).expect("options");
        let got: std::collections::BTreeMap<String, String> = csr
            .critical_options
            .iter()
            .map(|o| (o.name().to_owned(), o.value().to_owned()))
            .collect();
        assert_eq!(got, options, "{name}");
        let extensions: std::collections::BTreeMap<String, String> =
            serde_json::from_value(v["extensions"].clone()).expect("extensions");
        let got: std::collections::BTreeMap<String, String> = csr
            .extensions
            .iter()
            .map(|e| (e.name().to_owned(), e.value().to_owned()))
            .collect();
        assert_eq!(got, extensions, "{name}");

        let subject =
            ssh_key::PublicKey::from_openssh(v["subject_public_key"].as_str().expect("key"))
                .expect("key");
        assert_eq!(&csr.public_key, subject.key_data(), "{name}");

        let encoded = csr.to_proto().expect("encodes");
        assert_eq!(
            encoded, bytes,
            "{name}: to_proto is byte-identical to paramiko-cloud"
        );
        assert_eq!(
            CertificateSigningRequest::from_proto(&encoded).expect("again"),
            csr,
            "{name}"
        );
    }
}

fn sample() -> CertificateSigningRequest {
    let v = &vectors()[0];
    CertificateSigningRequest::from_proto(&decode_b64(
        v["csr_protobuf_base64"].as_str().expect("b64"),
    ))
    .expect("decodes")
}

#[test]
fn every_option_kind_round_trips_including_kmssh_additions() {
    let mut csr = sample();
    csr.serial = u64::MAX;
    csr.critical_options = vec![
        CriticalOption::ForceCommand("/usr/bin/backup".into()),
        CriticalOption::SourceAddress("10.0.0.0/8,::1".into()),
        CriticalOption::VerifyRequired,
        CriticalOption::Custom {
            name: "tenant@example.com".into(),
            value: "blue".into(),
        },
    ];
    csr.extensions = vec![
        Extension::PermitPty,
        Extension::NoTouchRequired,
        Extension::Custom {
            name: "login@example.com".into(),
            value: "alice".into(),
        },
    ];
    let bytes = csr.to_proto().expect("encodes");
    assert_eq!(
        CertificateSigningRequest::from_proto(&bytes).expect("decodes"),
        csr
    );
}

#[test]
fn malformed_requests_are_refused_with_the_field_named() {
    let good = sample().to_proto().expect("encodes");
    let field_of = |bytes: &[u8]| {
        CertificateSigningRequest::from_proto(bytes)
            .err()
            .and_then(|e| e.offending_field())
    };

    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0xff, 0xff, 0x03]);
    assert_eq!(
        field_of(&trailing),
        Some(Field::SigningRequest),
        "trailing garbage"
    );

    let mut unknown = good.clone();
    unknown.extend_from_slice(&[0x68, 0x01]); // field 13, varint
    assert_eq!(
        field_of(&unknown),
        Some(Field::SigningRequest),
        "unknown field"
    );

    let mut wrong_type = good.clone();
    wrong_type.extend_from_slice(&[0x2a, 0x01, 0x00]); // field 5 (serial) as length-delimited
    assert_eq!(
        field_of(&wrong_type),
        Some(Field::SigningRequest),
        "wrong wire type"
    );

    let mut twice = good.clone();
    twice.extend_from_slice(&[0x28, 0x05]); // serial again
    assert_eq!(
        field_of(&twice),
        Some(Field::SigningRequest),
        "singular field twice"
    );

    assert_eq!(
        field_of(&good[..good.len() - 3]),
        Some(Field::SigningRequest),
        "truncated"
    );
    assert_eq!(
        field_of(&[0x08, 0x07]),
        Some(Field::SigningRequest),
        "unknown cert type"
    );
    assert_eq!(
        field_of(&[0x12, 0x02, 0x08, 0x09]),
        Some(Field::SigningRequest),
        "unknown option enum"
    );

    let mut bad_key = sample();
    bad_key.principals.clear();
    let bytes = bad_key.to_proto().expect("encodes");
    let csr = CertificateSigningRequest::from_proto(&bytes).expect("empty principals decode");
    assert_eq!(
        csr.to_parameters(false)
            .err()
            .and_then(|e| e.offending_field()),
        Some(Field::Principals)
    );
    assert!(csr.to_parameters(true).is_ok());

    let mut inverted = sample();
    inverted.valid_before = inverted.valid_after;
    assert_eq!(
        field_of(&inverted.to_proto().expect("encodes")),
        Some(Field::ValidBefore)
    );

    // A subject key blob cut short.
    let mut truncated_key = good.clone();
    // The Ed25519 vector ends with field 10: tag 0x52, length 36, the 36-byte blob.
    let pos = truncated_key.len() - 38;
    assert_eq!(truncated_key[pos..pos + 2], [0x52, 36]);
    truncated_key.truncate(pos);
    truncated_key.extend_from_slice(&[0x52, 0x03, 0, 0, 0]);
    assert_eq!(field_of(&truncated_key), Some(Field::SubjectKey));

    // Empty principal string inside the list.
    let mut empty_principal = good;
    empty_principal.extend_from_slice(&[0x32, 0x00]);
    assert_eq!(field_of(&empty_principal), Some(Field::Principals));
}
