//! The gRPC messages and the codec that reads them strictly.
//!
//! tonic's generated code decodes with prost, which skips unknown fields. A signing request
//! is a security decision, so every message this crate decodes is first walked against its
//! layout ([`kmssh_pki::protobuf`]): an unknown field, a wrong wire type or a field given
//! twice is `INVALID_ARGUMENT`, not silently dropped.

use std::marker::PhantomData;

use kmssh_pki::csr::CSR_LAYOUT;
use kmssh_pki::protobuf::{FieldSpec, WireType, check_message, field};
use prost::Message;
use prost::bytes::Buf as _;
use prost::encoding;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Generated from `proto/rpc.proto` and `proto/csr.proto` (package `ssh_cert`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("ssh_cert");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ssh_cert_descriptor.bin"));
}

/// Generated from `proto/revocation.proto` (package `kmssh.revocation.v1`): kmssh's own
/// revocation service. Its messages are prost's; the codec still checks their layout first.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod revocation {
    tonic::include_proto!("kmssh.revocation.v1");
}

pub use proto::{CloudCertificateSigningResponse, CloudProvider, GetCertificateAuthorityResponse};
pub use revocation::{GetKrlRequest, GetKrlResponse, RevokeRequest, RevokeResponse};

/// `ssh_cert.CloudCertificateSigningRequest`, with the CSR kept as its encoded bytes so
/// that kmssh-pki's strict decoder, not prost, reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignCertificateRequest {
    /// `CloudProvider` (AWS = 0, AZURE = 1, GCP = 2).
    pub provider: i32,
    /// The key name (or provider key id) to sign with.
    pub kms_key_id: String,
    /// The encoded `ssh_cert.CSR` message.
    pub signing_request_payload: Vec<u8>,
    /// Set by the server's decoder when the message broke its layout: the service
    /// refuses it after authenticating the caller, so the refusal is recorded with them.
    pub wire_error: Option<String>,
}

impl SignCertificateRequest {
    /// A request for `kms_key_id` under `provider` with an encoded CSR.
    #[must_use]
    pub fn new(provider: CloudProvider, kms_key_id: &str, payload: Vec<u8>) -> Self {
        Self {
            provider: provider.into(),
            kms_key_id: kms_key_id.to_owned(),
            signing_request_payload: payload,
            wire_error: None,
        }
    }
}

/// `ssh_cert.GetCertificateAuthorityRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetCertificateAuthorityRequest {
    /// `CloudProvider` (AWS = 0, AZURE = 1, GCP = 2).
    pub provider: i32,
    /// The key name (or provider key id).
    pub kms_key_id: String,
    /// As [`SignCertificateRequest::wire_error`].
    pub wire_error: Option<String>,
}

impl GetCertificateAuthorityRequest {
    /// A request for the CA key `kms_key_id` under `provider`.
    #[must_use]
    pub fn new(provider: CloudProvider, kms_key_id: &str) -> Self {
        Self {
            provider: provider.into(),
            kms_key_id: kms_key_id.to_owned(),
            wire_error: None,
        }
    }
}

// Written out rather than derived: prost's derive has no field outside the wire, and
// `wire_error` must not be one.
impl Message for SignCertificateRequest {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        if self.provider != 0 {
            encoding::int32::encode(1, &self.provider, buf);
        }
        if !self.kms_key_id.is_empty() {
            encoding::string::encode(2, &self.kms_key_id, buf);
        }
        if !self.signing_request_payload.is_empty() {
            encoding::bytes::encode(3, &self.signing_request_payload, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => encoding::int32::merge(wire_type, &mut self.provider, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.kms_key_id, buf, ctx),
            3 => encoding::bytes::merge(wire_type, &mut self.signing_request_payload, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.provider == 0 {
            0
        } else {
            encoding::int32::encoded_len(1, &self.provider)
        }) + (if self.kms_key_id.is_empty() {
            0
        } else {
            encoding::string::encoded_len(2, &self.kms_key_id)
        }) + (if self.signing_request_payload.is_empty() {
            0
        } else {
            encoding::bytes::encoded_len(3, &self.signing_request_payload)
        })
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl Message for GetCertificateAuthorityRequest {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        if self.provider != 0 {
            encoding::int32::encode(1, &self.provider, buf);
        }
        if !self.kms_key_id.is_empty() {
            encoding::string::encode(2, &self.kms_key_id, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => encoding::int32::merge(wire_type, &mut self.provider, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.kms_key_id, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.provider == 0 {
            0
        } else {
            encoding::int32::encoded_len(1, &self.provider)
        }) + (if self.kms_key_id.is_empty() {
            0
        } else {
            encoding::string::encoded_len(2, &self.kms_key_id)
        })
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A message with a known layout, checked before prost decodes it.
pub trait StrictMessage: Message + Default {
    /// The message's name, for errors.
    const NAME: &'static str;
    /// Its fields.
    const LAYOUT: &'static [FieldSpec];

    /// What a message that breaks its layout becomes: requests carry the error on to the
    /// service (which refuses them once it knows the caller, so the refusal is recorded);
    /// answers have no such form and fail to decode.
    fn broken(_error: String) -> Option<Self> {
        None
    }
}

const PROVIDER_AND_KEY: [FieldSpec; 2] = [
    field(1, "provider", WireType::Varint, 1, None),
    field(2, "kmsKeyId", WireType::Len, 1, None),
];

impl StrictMessage for SignCertificateRequest {
    const NAME: &'static str = "CloudCertificateSigningRequest";
    fn broken(error: String) -> Option<Self> {
        Some(Self {
            wire_error: Some(error),
            ..Self::default()
        })
    }
    const LAYOUT: &'static [FieldSpec] = &[
        PROVIDER_AND_KEY[0],
        PROVIDER_AND_KEY[1],
        field(
            3,
            "signingRequestPayload",
            WireType::Len,
            1,
            Some(CSR_LAYOUT),
        ),
    ];
}

impl StrictMessage for GetCertificateAuthorityRequest {
    const NAME: &'static str = "GetCertificateAuthorityRequest";
    fn broken(error: String) -> Option<Self> {
        Some(Self {
            wire_error: Some(error),
            ..Self::default()
        })
    }
    const LAYOUT: &'static [FieldSpec] = &PROVIDER_AND_KEY;
}

impl StrictMessage for CloudCertificateSigningResponse {
    const NAME: &'static str = "CloudCertificateSigningResponse";
    const LAYOUT: &'static [FieldSpec] = &[
        field(1, "certificateType", WireType::Len, 1, None),
        field(2, "certificate", WireType::Len, 1, None),
    ];
}

impl StrictMessage for GetCertificateAuthorityResponse {
    const NAME: &'static str = "GetCertificateAuthorityResponse";
    const LAYOUT: &'static [FieldSpec] = &[
        field(1, "keyType", WireType::Len, 1, None),
        field(2, "publicKey", WireType::Len, 1, None),
    ];
}

// Revocation messages: a request that breaks its layout is refused before the caller is
// known (prost's types carry no error field), as `INVALID_ARGUMENT` naming the field.
impl StrictMessage for RevokeRequest {
    const NAME: &'static str = "RevokeRequest";
    const LAYOUT: &'static [FieldSpec] = &[
        field(1, "key", WireType::Len, 1, None),
        // Packed, as proto3 encodes repeated scalars: one length-delimited run.
        field(2, "serials", WireType::Len, 1, None),
        field(3, "key_id", WireType::Len, 1, None),
        field(4, "principal", WireType::Len, 1, None),
        field(5, "reason", WireType::Len, 1, None),
    ];
}

impl StrictMessage for RevokeResponse {
    const NAME: &'static str = "RevokeResponse";
    const LAYOUT: &'static [FieldSpec] = &[
        field(1, "revoked", WireType::Len, 1, None),
        field(2, "already_revoked", WireType::Len, 1, None),
        field(3, "krl_version", WireType::Varint, 1, None),
    ];
}

impl StrictMessage for GetKrlRequest {
    const NAME: &'static str = "GetKrlRequest";
    const LAYOUT: &'static [FieldSpec] = &[field(1, "key", WireType::Len, 1, None)];
}

impl StrictMessage for GetKrlResponse {
    const NAME: &'static str = "GetKrlResponse";
    const LAYOUT: &'static [FieldSpec] = &[
        field(1, "krl", WireType::Len, 1, None),
        field(2, "krl_version", WireType::Varint, 1, None),
    ];
}

/// tonic codec: prost encoding, strict decoding.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: StrictMessage + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(PhantomData)
    }
}

/// The decoding half of [`StrictCodec`].
#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(PhantomData<U>);

impl<U: StrictMessage> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        match decode_strict(&bytes) {
            Ok(message) => Ok(Some(message)),
            Err(status) => U::broken(status.message().to_owned())
                .map(Some)
                .ok_or(status),
        }
    }
}

/// Checks `bytes` against `U`'s layout, then decodes it.
///
/// # Errors
/// `INVALID_ARGUMENT` naming the field that breaks the layout.
pub fn decode_strict<U: StrictMessage>(bytes: &[u8]) -> Result<U, Status> {
    check_message(bytes, U::LAYOUT, U::NAME)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    U::decode(bytes).map_err(|e| Status::invalid_argument(format!("{}: {e}", U::NAME)))
}

impl CloudProvider {
    /// The provider a key URI scheme belongs to, if any (`local:` keys belong to none).
    #[must_use]
    pub fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "aws-kms" => Some(Self::Aws),
            "azure-kv" => Some(Self::Azure),
            "gcp-kms" => Some(Self::Gcp),
            _ => None,
        }
    }
}
