//! Certificate signing requests, wire-compatible with paramiko-cloud's `ssh_cert.CSR`
//! protobuf message.
//!
//! | field | number | type |
//! |---|---|---|
//! | type | 1 | enum { USER = 0; HOST = 1 } |
//! | criticalOptions | 2 | repeated { CriticalOption type = 1; string value = 2 }, FORCE_COMMAND = 0, SOURCE_ADDRESS = 1, VERIFY_REQUIRED = 2 (kmssh) |
//! | extensions | 3 | repeated { Extension type = 1; string value = 2 }, NO_TOUCH_REQUIRED = 0 … PERMIT_USER_RC = 5 |
//! | keyId | 4 | string |
//! | serial | 5 | uint64 |
//! | principals | 6 | repeated string |
//! | validAfter | 7 | uint64 |
//! | validBefore | 8 | uint64 |
//! | publicKeyType | 9 | string |
//! | publicKey | 10 | bytes: the key blob after its leading type string |
//! | customCriticalOptions | 11 | repeated { string name = 1; string value = 2 } (kmssh) |
//! | customExtensions | 12 | repeated { string name = 1; string value = 2 } (kmssh) |
//!
//! Decoding is strict, unlike protobuf's default: an unknown field number, a field with
//! the wrong wire type, a singular field given twice, an unknown enum value, or bytes
//! after the last field are errors. A request is a security decision; a field the
//! requester set and we silently skipped could widen what gets signed.

use prost::Message;
use ssh_key::encoding::Encode;
use ssh_key::public::KeyData;

use crate::certificate::{check_subject_key, key_fields};
use crate::error::{Error, Field, Result};
use crate::options::{CriticalOption, Extension};
use crate::params::{CertificateParameters, CertificateType};
use crate::protobuf::{self, FieldSpec, WireType, field};

mod wire {
    //! The message layout, field for field.

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Csr {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "2")]
        pub critical_options: Vec<TypedValue>,
        #[prost(message, repeated, tag = "3")]
        pub extensions: Vec<TypedValue>,
        #[prost(string, tag = "4")]
        pub key_id: String,
        #[prost(uint64, tag = "5")]
        pub serial: u64,
        #[prost(string, repeated, tag = "6")]
        pub principals: Vec<String>,
        #[prost(uint64, tag = "7")]
        pub valid_after: u64,
        #[prost(uint64, tag = "8")]
        pub valid_before: u64,
        #[prost(string, tag = "9")]
        pub public_key_type: String,
        #[prost(bytes = "vec", tag = "10")]
        pub public_key: Vec<u8>,
        #[prost(message, repeated, tag = "11")]
        pub custom_critical_options: Vec<NamedValue>,
        #[prost(message, repeated, tag = "12")]
        pub custom_extensions: Vec<NamedValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypedValue {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedValue {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

/// Critical options by enum number in paramiko-cloud's `CriticalOption` (+ kmssh's 2).
const CRITICAL_OPTION_NAMES: [&str; 3] = ["force-command", "source-address", "verify-required"];
/// Extensions by enum number in paramiko-cloud's `Extension`.
const EXTENSION_NAMES: [&str; 6] = [
    "no-touch-required",
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Largest request accepted: 256 principals of 4 KiB plus options fit well inside.
const MAX_REQUEST_LEN: usize = 2 * 1024 * 1024;

/// A request for a certificate: every field of it, as paramiko-cloud's `CSR` carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSigningRequest {
    /// User or host.
    pub cert_type: CertificateType,
    /// Critical options, as requested.
    pub critical_options: Vec<CriticalOption>,
    /// Extensions, as requested: an empty list means no extensions.
    pub extensions: Vec<Extension>,
    /// The key id.
    pub key_id: String,
    /// The serial (the whole `u64` range; 0 is a serial like any other).
    pub serial: u64,
    /// The principals.
    pub principals: Vec<String>,
    /// Start of validity, Unix seconds.
    pub valid_after: u64,
    /// End of validity, Unix seconds.
    pub valid_before: u64,
    /// The subject's public key.
    pub public_key: KeyData,
}

fn bad_request(reason: impl Into<String>) -> Error {
    Error::field(Field::SigningRequest, reason)
}

impl CertificateSigningRequest {
    /// Decodes and checks a base64-encoded serialized request (how paramiko-cloud
    /// clients often ship one as text); whitespace and line breaks are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the signing request when the text is not base64;
    /// otherwise as [`CertificateSigningRequest::from_proto`].
    pub fn from_base64(text: &[u8]) -> Result<Self> {
        use base64ct::Encoding as _;
        let text =
            std::str::from_utf8(text).map_err(|_| bad_request("the CSR is not base64 text"))?;
        let compact: String = text.split_whitespace().collect();
        let bytes = base64ct::Base64::decode_vec(&compact)
            .map_err(|_| bad_request("the CSR is not valid base64"))?;
        Self::from_proto(&bytes)
    }

    /// Decodes and checks a serialized request.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the signing request for wire-level problems (see
    /// the module docs), or the certificate field whose value is unacceptable;
    /// [`Error::UnsupportedKey`] for a subject key kmssh does not certify.
    pub fn from_proto(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(bad_request(format!(
                "{} bytes is over the {MAX_REQUEST_LEN}-byte limit",
                bytes.len()
            )));
        }
        protobuf::check_message(bytes, CSR_LAYOUT, "CSR")
            .map_err(|e| bad_request(e.to_string()))?;
        let msg = wire::Csr::decode(bytes).map_err(|e| bad_request(format!("protobuf: {e}")))?;

        let cert_type = match msg.r#type {
            0 => CertificateType::User,
            1 => CertificateType::Host,
            other => {
                return Err(bad_request(format!(
                    "type: unknown value {other} (USER = 0, HOST = 1)"
                )));
            }
        };
        let named = |names: &[&'static str], number: i32, what: &str| {
            usize::try_from(number)
                .ok()
                .and_then(|i| names.get(i).copied())
                .ok_or_else(|| bad_request(format!("{what}: unknown enum value {number}")))
        };
        let mut critical_options = Vec::new();
        for entry in &msg.critical_options {
            let name = named(&CRITICAL_OPTION_NAMES, entry.r#type, "criticalOptions.type")?;
            critical_options.push(CriticalOption::parse(name, &entry.value)?);
        }
        for entry in &msg.custom_critical_options {
            if CRITICAL_OPTION_NAMES.contains(&entry.name.as_str()) {
                return Err(bad_request(format!(
                    "customCriticalOptions: `{}` has its own enum value",
                    entry.name
                )));
            }
            critical_options.push(CriticalOption::parse(&entry.name, &entry.value)?);
        }
        let mut extensions = Vec::new();
        for entry in &msg.extensions {
            let name = named(&EXTENSION_NAMES, entry.r#type, "extensions.type")?;
            extensions.push(Extension::parse(name, &entry.value)?);
        }
        for entry in &msg.custom_extensions {
            if EXTENSION_NAMES.contains(&entry.name.as_str()) {
                return Err(bad_request(format!(
                    "customExtensions: `{}` has its own enum value",
                    entry.name
                )));
            }
            extensions.push(Extension::parse(&entry.name, &entry.value)?);
        }

        let mut full_key = Vec::with_capacity(msg.public_key.len() + msg.public_key_type.len() + 4);
        Encode::encode(&msg.public_key_type, &mut full_key)
            .map_err(|e| bad_request(format!("publicKeyType: {e}")))?;
        full_key.extend_from_slice(&msg.public_key);
        let public_key = ssh_key::PublicKey::from_bytes(&full_key)
            .map_err(|e| {
                Error::field(
                    Field::SubjectKey,
                    format!(
                        "publicKeyType `{}` with publicKey does not decode: {e}",
                        msg.public_key_type
                    ),
                )
            })?
            .key_data()
            .clone();
        // `ssh-key` ignores bytes left over inside a length-prefixed string (an Ed25519
        // key of 40 bytes reads as its first 32): demand that the key encodes back to
        // exactly what was sent, so the certificate names the key the request carries.
        if public_key.encode_vec().ok().as_deref() != Some(full_key.as_slice()) {
            return Err(Error::field(
                Field::SubjectKey,
                format!(
                    "publicKey is not a well-formed `{}` key: it has extra or malformed bytes",
                    msg.public_key_type
                ),
            ));
        }
        check_subject_key(&public_key)?;

        let request = Self {
            cert_type,
            critical_options,
            extensions,
            key_id: msg.key_id,
            serial: msg.serial,
            principals: msg.principals,
            valid_after: msg.valid_after,
            valid_before: msg.valid_before,
            public_key,
        };
        request.check()?;
        Ok(request)
    }

    /// Serializes the request; known options and extensions use paramiko-cloud's enum
    /// fields, custom ones kmssh's fields 11 and 12.
    ///
    /// # Errors
    /// [`Error::InvalidField`] for a subject key that cannot be encoded.
    pub fn to_proto(&self) -> Result<Vec<u8>> {
        let split = |name: &str, value: &str, names: &[&str]| match (0..)
            .zip(names)
            .find_map(|(number, n)| (*n == name).then_some(number))
        {
            Some(number) => Ok(wire::TypedValue {
                r#type: number,
                value: value.to_owned(),
            }),
            None => Err(wire::NamedValue {
                name: name.to_owned(),
                value: value.to_owned(),
            }),
        };
        let (mut critical_options, mut custom_critical_options) = (Vec::new(), Vec::new());
        for o in &self.critical_options {
            match split(o.name(), o.value(), &CRITICAL_OPTION_NAMES) {
                Ok(t) => critical_options.push(t),
                Err(n) => custom_critical_options.push(n),
            }
        }
        let (mut extensions, mut custom_extensions) = (Vec::new(), Vec::new());
        for e in &self.extensions {
            match split(e.name(), e.value(), &EXTENSION_NAMES) {
                Ok(t) => extensions.push(t),
                Err(n) => custom_extensions.push(n),
            }
        }
        let blob = self
            .public_key
            .encode_vec()
            .map_err(|e| Error::field(Field::SubjectKey, format!("cannot encode: {e}")))?;
        let algorithm = self.public_key.algorithm();
        let public_key = key_fields(&blob)
            .ok_or_else(|| {
                Error::field(
                    Field::SubjectKey,
                    "the encoded key is shorter than its algorithm name says",
                )
            })?
            .to_vec();
        let msg = wire::Csr {
            r#type: match self.cert_type {
                CertificateType::User => 0,
                CertificateType::Host => 1,
            },
            critical_options,
            extensions,
            key_id: self.key_id.clone(),
            serial: self.serial,
            principals: self.principals.clone(),
            valid_after: self.valid_after,
            valid_before: self.valid_before,
            public_key_type: algorithm.as_str().to_owned(),
            public_key,
            custom_critical_options,
            custom_extensions,
        };
        Ok(msg.encode_to_vec())
    }

    /// The parameters that issue exactly the requested certificate: every field honoured,
    /// an empty extension list meaning none. An empty principal list is refused unless
    /// `allow_any_principal` (OpenSSH reads it as "any principal").
    ///
    /// # Errors
    /// As the [`CertificateParameters`] setters; [`Field::Principals`] for an empty list
    /// without the opt-in.
    pub fn to_parameters(&self, allow_any_principal: bool) -> Result<CertificateParameters> {
        if self.valid_before == 0 {
            return Err(Error::field(
                Field::ValidBefore,
                "the request asks for no end of validity (validBefore unset)",
            ));
        }
        let mut params = CertificateParameters::new(self.cert_type);
        params
            .principals(self.principals.iter().cloned())?
            .key_id(self.key_id.clone())?
            .serial(self.serial)?
            .valid_after(self.valid_after)?
            .valid_before(self.valid_before)?;
        params.no_extensions();
        for option in &self.critical_options {
            params.critical_option(option.clone())?;
        }
        for extension in &self.extensions {
            params.extension(extension.clone())?;
        }
        if self.principals.is_empty() {
            if !allow_any_principal {
                return Err(Error::field(
                    Field::Principals,
                    "the request lists no principals, which OpenSSH reads as \"any principal\"; allow that explicitly",
                ));
            }
            params.allow_any_principal();
        }
        Ok(params)
    }

    /// Every check but the principal opt-in: field values, duplicates, validity order.
    fn check(&self) -> Result<()> {
        // validBefore 0 is "no end asked for": a signing service's policy may pick one;
        // `to_parameters` (issue exactly as asked) refuses it.
        if self.valid_before == 0 {
            let mut probe = self.clone();
            probe.valid_before = u64::MAX;
            return probe.check();
        }
        if self.valid_before <= self.valid_after {
            return Err(Error::field(
                Field::ValidBefore,
                format!(
                    "valid before ({}) must be later than valid after ({})",
                    self.valid_before, self.valid_after
                ),
            ));
        }
        self.to_parameters(true).map(|_| ())
    }
}

/// Repeated fields are bounded during the walk, before anything is decoded: a request
/// with 100,000 options costs a refusal, not a decode, a check and a signature.
const PRINCIPALS: usize = crate::params::MAX_PRINCIPALS;
const OPTIONS: usize = crate::params::MAX_OPTIONS;

const TYPED_VALUE: &[FieldSpec] = &[
    field(1, "type", WireType::Varint, 1, None),
    field(2, "value", WireType::Len, 1, None),
];
const NAMED_VALUE: &[FieldSpec] = &[
    field(1, "name", WireType::Len, 1, None),
    field(2, "value", WireType::Len, 1, None),
];
/// paramiko-cloud's `CSR` with kmssh's fields 11 and 12.
pub const CSR_LAYOUT: &[FieldSpec] = &[
    field(1, "type", WireType::Varint, 1, None),
    field(
        2,
        "criticalOptions",
        WireType::Len,
        OPTIONS,
        Some(TYPED_VALUE),
    ),
    field(3, "extensions", WireType::Len, OPTIONS, Some(TYPED_VALUE)),
    field(4, "keyId", WireType::Len, 1, None),
    field(5, "serial", WireType::Varint, 1, None),
    field(6, "principals", WireType::Len, PRINCIPALS, None),
    field(7, "validAfter", WireType::Varint, 1, None),
    field(8, "validBefore", WireType::Varint, 1, None),
    field(9, "publicKeyType", WireType::Len, 1, None),
    field(10, "publicKey", WireType::Len, 1, None),
    field(
        11,
        "customCriticalOptions",
        WireType::Len,
        OPTIONS,
        Some(NAMED_VALUE),
    ),
    field(
        12,
        "customExtensions",
        WireType::Len,
        OPTIONS,
        Some(NAMED_VALUE),
    ),
];
