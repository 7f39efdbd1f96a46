//! The two objects each key shows: a `CKO_PUBLIC_KEY` and a `CKO_PRIVATE_KEY` with the
//! same `CKA_ID` and `CKA_LABEL`, and every attribute's value.
//!
//! Both objects have `CKA_PRIVATE` false: the token needs no login, and a private object
//! would be hidden from a session that is not logged in, where OpenSSH looks for the
//! private key (`CKO_PRIVATE_KEY` with the public key's `CKA_ID` and `CKA_SIGN`) without
//! logging in. The private key is still `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`: its
//! secret attributes answer `CKR_ATTRIBUTE_SENSITIVE`, as nothing of it is here to give.

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_ULONG, CK_UNAVAILABLE_INFORMATION,
    CKA_ALLOWED_MECHANISMS, CKA_ALWAYS_AUTHENTICATE, CKA_ALWAYS_SENSITIVE, CKA_CLASS,
    CKA_COEFFICIENT, CKA_COPYABLE, CKA_DECRYPT, CKA_DERIVE, CKA_DESTROYABLE, CKA_EC_PARAMS,
    CKA_EC_POINT, CKA_ENCRYPT, CKA_END_DATE, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_EXTRACTABLE,
    CKA_ID, CKA_KEY_GEN_MECHANISM, CKA_KEY_TYPE, CKA_LABEL, CKA_LOCAL, CKA_MODIFIABLE, CKA_MODULUS,
    CKA_MODULUS_BITS, CKA_NEVER_EXTRACTABLE, CKA_PRIME_1, CKA_PRIME_2, CKA_PRIVATE,
    CKA_PRIVATE_EXPONENT, CKA_PUBLIC_EXPONENT, CKA_PUBLIC_KEY_INFO, CKA_SENSITIVE, CKA_SIGN,
    CKA_SIGN_RECOVER, CKA_START_DATE, CKA_SUBJECT, CKA_TOKEN, CKA_TRUSTED, CKA_UNWRAP, CKA_VALUE,
    CKA_VERIFY, CKA_VERIFY_RECOVER, CKA_WRAP, CKA_WRAP_WITH_TRUSTED, CKO_PRIVATE_KEY,
    CKO_PUBLIC_KEY,
};
use kmssh_core::rsa::traits::PublicKeyParts as _;
use kmssh_core::spki::EncodePublicKey as _;
use kmssh_core::{Algorithm, PublicKey};
use sha2::Digest as _;

use super::mechanism::{Mechanism, key_type, mechanisms_for};

/// Which of a key's two objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectClass {
    /// `CKO_PUBLIC_KEY`.
    Public,
    /// `CKO_PRIVATE_KEY`: the signing handle.
    Private,
}

impl ObjectClass {
    /// The `CKO_*` value.
    #[must_use]
    pub fn ck_class(self) -> CK_OBJECT_CLASS {
        match self {
            Self::Public => CKO_PUBLIC_KEY,
            Self::Private => CKO_PRIVATE_KEY,
        }
    }
}

/// An object: the key's index in the token and which half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectId {
    /// The key's index, in configuration order.
    pub key: usize,
    /// Which object.
    pub class: ObjectClass,
}

impl ObjectId {
    /// The handle: `2k + 1` for the public key, `2k + 2` for the private key; never 0
    /// (`CK_INVALID_HANDLE`), and stable for the life of the initialised module.
    #[must_use]
    pub fn handle(self) -> CK_OBJECT_HANDLE {
        let base = CK_OBJECT_HANDLE::try_from(self.key)
            .unwrap_or(CK_OBJECT_HANDLE::MAX / 2 - 1)
            .saturating_mul(2);
        match self.class {
            ObjectClass::Public => base + 1,
            ObjectClass::Private => base + 2,
        }
    }

    /// The object behind a handle, if it names one of `keys` keys.
    #[must_use]
    pub fn from_handle(handle: CK_OBJECT_HANDLE, keys: usize) -> Option<Self> {
        let index = usize::try_from(handle.checked_sub(1)?).ok()?;
        let key = index / 2;
        let class = if index % 2 == 0 {
            ObjectClass::Public
        } else {
            ObjectClass::Private
        };
        (key < keys).then_some(Self { key, class })
    }
}

/// One attribute's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeValue {
    /// The value's bytes, in the C layout (`CK_ULONG` native-endian, `CK_BBOOL` one byte).
    Bytes(Vec<u8>),
    /// A secret attribute of the private key: `CKR_ATTRIBUTE_SENSITIVE`.
    Sensitive,
    /// Not an attribute of this object: `CKR_ATTRIBUTE_TYPE_INVALID`.
    Invalid,
}

/// What a key shows as its two objects.
#[derive(Clone, Debug)]
pub struct KeyObjects {
    label: String,
    id: Vec<u8>,
    public_key: PublicKey,
    spki: Vec<u8>,
    mechanisms: Vec<Mechanism>,
}

/// The default `CKA_ID`: the first 16 bytes of SHA-256 over the OpenSSH public key blob
/// (what `ssh-keygen -l` fingerprints), stable across hosts and restarts for the same key.
#[must_use]
pub fn default_id(key: &PublicKey) -> Vec<u8> {
    use kmssh_pki::ssh_key::encoding::Encode as _;
    // Encoding a supported key does not fail; the OpenSSH line is the same key's text.
    let blob = kmssh_pki::ssh_public_key(key)
        .encode_vec()
        .unwrap_or_else(|_| kmssh_pki::pubkey_string(key, "").into_bytes());
    sha2::Sha256::digest(&blob)[..16].to_vec()
}

fn ulong(value: CK_ULONG) -> AttributeValue {
    AttributeValue::Bytes(value.to_ne_bytes().to_vec())
}

fn boolean(value: bool) -> AttributeValue {
    AttributeValue::Bytes(vec![u8::from(value)])
}

fn bytes(value: &[u8]) -> AttributeValue {
    AttributeValue::Bytes(value.to_vec())
}

/// A DER length.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let be = len.to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | u8::try_from(be.len() - skip).unwrap_or(0));
        out.extend_from_slice(&be[skip..]);
    }
}

/// A DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// `id-Ed25519` (1.3.101.112), RFC 8410: the `CKA_EC_PARAMS` of Ed25519 keys. PKCS#11 3.0
/// also allows the printable string `edwards25519`; OpenSSH ≥ 10.1 and opensc accept
/// both, and the OID is what PKCS#11 3.1 recommends.
const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];

/// DER tags used here.
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;

impl KeyObjects {
    /// The objects of `public_key`, whose provider signs `algorithms`, labelled `label`
    /// with `id` (or [`default_id`]).
    #[must_use]
    pub fn new(
        label: &str,
        id: Option<Vec<u8>>,
        public_key: PublicKey,
        algorithms: &[Algorithm],
    ) -> Self {
        let id = id.unwrap_or_else(|| default_id(&public_key));
        // A supported key always encodes; an empty value would only hide the attribute.
        let spki = public_key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let mechanisms = mechanisms_for(&public_key, algorithms);
        Self {
            label: label.to_owned(),
            id,
            public_key,
            spki,
            mechanisms,
        }
    }

    /// `CKA_LABEL`.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `CKA_ID`.
    #[must_use]
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The key's public half.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// `CKA_EC_PARAMS`: the named curve's OID in DER, for EC and Edwards keys.
    fn ec_params(&self) -> Option<Vec<u8>> {
        match &self.public_key {
            PublicKey::Ecdsa(k) => Some(der(TAG_OID, k.curve().oid().as_bytes())),
            PublicKey::Ed25519(_) => Some(der(TAG_OID, ED25519_OID)),
            PublicKey::Rsa(_) => None,
        }
    }

    /// `CKA_EC_POINT`: the uncompressed point (EC) or the 32-byte key (Ed25519) in a DER
    /// OCTET STRING.
    fn ec_point(&self) -> Option<Vec<u8>> {
        match &self.public_key {
            PublicKey::Ecdsa(k) => Some(der(TAG_OCTET_STRING, &k.to_sec1_bytes())),
            PublicKey::Ed25519(k) => Some(der(TAG_OCTET_STRING, k.as_bytes())),
            PublicKey::Rsa(_) => None,
        }
    }

    /// One attribute of one of the two objects.
    #[must_use]
    pub fn attribute(&self, class: ObjectClass, attribute: CK_ATTRIBUTE_TYPE) -> AttributeValue {
        let private = class == ObjectClass::Private;
        let rsa = match &self.public_key {
            PublicKey::Rsa(k) => Some(k),
            PublicKey::Ecdsa(_) | PublicKey::Ed25519(_) => None,
        };
        match attribute {
            CKA_CLASS => ulong(class.ck_class()),
            CKA_TOKEN => boolean(true),
            CKA_PRIVATE | CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE | CKA_DERIVE
            | CKA_LOCAL => boolean(false),
            CKA_LABEL => bytes(self.label.as_bytes()),
            CKA_ID => bytes(&self.id),
            CKA_KEY_TYPE => ulong(key_type(self.public_key.family())),
            // Empty: the key has no validity dates or subject here.
            CKA_START_DATE | CKA_END_DATE | CKA_SUBJECT => bytes(&[]),
            // The key was not generated by this token: the spec's value for that.
            CKA_KEY_GEN_MECHANISM => ulong(CK_UNAVAILABLE_INFORMATION),
            CKA_ALLOWED_MECHANISMS => AttributeValue::Bytes(
                self.mechanisms
                    .iter()
                    .flat_map(|m| m.ck_type().to_ne_bytes())
                    .collect(),
            ),
            CKA_PUBLIC_KEY_INFO => bytes(&self.spki),
            CKA_EC_PARAMS => self
                .ec_params()
                .map_or(AttributeValue::Invalid, |v| bytes(&v)),
            CKA_EC_POINT => self
                .ec_point()
                .map_or(AttributeValue::Invalid, |v| bytes(&v)),
            CKA_MODULUS => rsa.map_or(AttributeValue::Invalid, |k| bytes(&k.n_bytes())),
            CKA_PUBLIC_EXPONENT => rsa.map_or(AttributeValue::Invalid, |k| bytes(&k.e_bytes())),
            CKA_MODULUS_BITS => rsa.map_or(AttributeValue::Invalid, |k| {
                ulong(CK_ULONG::from(k.n().bit_width_vartime()))
            }),
            // Public key only.
            CKA_ENCRYPT | CKA_VERIFY_RECOVER | CKA_WRAP | CKA_TRUSTED if !private => boolean(false),
            CKA_VERIFY if !private => boolean(true),
            // Private key only.
            CKA_SIGN if private => boolean(true),
            CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE if private => {
                boolean(true)
            }
            CKA_DECRYPT
            | CKA_SIGN_RECOVER
            | CKA_UNWRAP
            | CKA_EXTRACTABLE
            | CKA_WRAP_WITH_TRUSTED
            | CKA_ALWAYS_AUTHENTICATE
                if private =>
            {
                boolean(false)
            }
            CKA_VALUE if private && rsa.is_none() => AttributeValue::Sensitive,
            CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1 | CKA_EXPONENT_2
            | CKA_COEFFICIENT
                if private && rsa.is_some() =>
            {
                AttributeValue::Sensitive
            }
            _ => AttributeValue::Invalid,
        }
    }

    /// Whether the object matches a `C_FindObjectsInit` template: every attribute present
    /// with an equal value (booleans compared as true/false, whatever non-zero byte the
    /// caller used).
    #[must_use]
    pub fn matches(&self, class: ObjectClass, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template.iter().all(
            |(attribute, wanted)| match self.attribute(class, *attribute) {
                AttributeValue::Bytes(value) => {
                    if BOOLEANS.contains(attribute) && value.len() == 1 && wanted.len() == 1 {
                        (value[0] != 0) == (wanted[0] != 0)
                    } else {
                        &value == wanted
                    }
                }
                AttributeValue::Sensitive | AttributeValue::Invalid => false,
            },
        )
    }
}

/// The `CK_BBOOL` attributes.
const BOOLEANS: [CK_ATTRIBUTE_TYPE; 22] = [
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_DERIVE,
    CKA_LOCAL,
    CKA_ENCRYPT,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_TRUSTED,
    CKA_SENSITIVE,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles are 1-based, two per key, and unknown handles are refused.
    #[test]
    fn handles_round_trip() {
        for key in 0..3 {
            for class in [ObjectClass::Public, ObjectClass::Private] {
                let id = ObjectId { key, class };
                assert_eq!(ObjectId::from_handle(id.handle(), 3), Some(id));
            }
        }
        assert_eq!(ObjectId::from_handle(0, 3), None);
        assert_eq!(ObjectId::from_handle(7, 3), None);
    }

    /// DER lengths past 127 take the long form (a P-521 point is 133 bytes).
    #[test]
    fn der_long_lengths() {
        let tlv = der(TAG_OCTET_STRING, &[0; 133]);
        assert_eq!(&tlv[..3], &[0x04, 0x81, 0x85]);
        assert_eq!(tlv.len(), 136);
        assert_eq!(
            &der(TAG_OCTET_STRING, &[0; 300])[..4],
            &[0x04, 0x82, 0x01, 0x2c]
        );
    }
}
