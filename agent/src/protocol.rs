//! The ssh-agent wire protocol (RFC 9987), the subset an OpenSSH client uses: frames,
//! requests and answers. Owned and small: decoding never panics, refuses trailing bytes and
//! frames over [`MAX_MESSAGE_LEN`], and is fuzzed (`fuzz/fuzz_targets/agent_codec.rs`).

use std::fmt;

use kmssh_pki::ssh_key::encoding::{Decode, Encode};

/// The longest message accepted, as OpenSSH's own agent: 256 KiB.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// `SSH_AGENT_FAILURE`.
pub const SSH_AGENT_FAILURE: u8 = 5;
/// `SSH_AGENT_SUCCESS`.
pub const SSH_AGENT_SUCCESS: u8 = 6;
/// `SSH_AGENTC_REQUEST_IDENTITIES`.
pub const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENT_IDENTITIES_ANSWER`.
pub const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
/// `SSH_AGENTC_SIGN_REQUEST`.
pub const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
/// `SSH_AGENT_SIGN_RESPONSE`.
pub const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
/// `SSH_AGENTC_ADD_IDENTITY`.
pub const SSH_AGENTC_ADD_IDENTITY: u8 = 17;
/// `SSH_AGENTC_REMOVE_IDENTITY`.
pub const SSH_AGENTC_REMOVE_IDENTITY: u8 = 18;
/// `SSH_AGENTC_REMOVE_ALL_IDENTITIES`.
pub const SSH_AGENTC_REMOVE_ALL_IDENTITIES: u8 = 19;
/// `SSH_AGENTC_ADD_SMARTCARD_KEY`.
pub const SSH_AGENTC_ADD_SMARTCARD_KEY: u8 = 20;
/// `SSH_AGENTC_REMOVE_SMARTCARD_KEY`.
pub const SSH_AGENTC_REMOVE_SMARTCARD_KEY: u8 = 21;
/// `SSH_AGENTC_LOCK`.
pub const SSH_AGENTC_LOCK: u8 = 22;
/// `SSH_AGENTC_UNLOCK`.
pub const SSH_AGENTC_UNLOCK: u8 = 23;
/// `SSH_AGENTC_ADD_ID_CONSTRAINED`.
pub const SSH_AGENTC_ADD_ID_CONSTRAINED: u8 = 25;
/// `SSH_AGENTC_ADD_SMARTCARD_KEY_CONSTRAINED`.
pub const SSH_AGENTC_ADD_SMARTCARD_KEY_CONSTRAINED: u8 = 26;
/// `SSH_AGENTC_EXTENSION`.
pub const SSH_AGENTC_EXTENSION: u8 = 27;

/// Sign-request flag: an RSA key signs `rsa-sha2-256`.
pub const SSH_AGENT_RSA_SHA2_256: u32 = 0x02;
/// Sign-request flag: an RSA key signs `rsa-sha2-512`.
pub const SSH_AGENT_RSA_SHA2_512: u32 = 0x04;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A frame with no type byte.
    #[error("empty agent message")]
    Empty,
    /// A frame longer than [`MAX_MESSAGE_LEN`].
    #[error("agent message of {0} bytes is over the {MAX_MESSAGE_LEN}-byte limit")]
    TooLong(usize),
    /// A field that does not decode.
    #[error("malformed {message}: {detail}")]
    Malformed {
        /// The message it was in.
        message: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Bytes after the last field.
    #[error("{message} has {count} trailing bytes")]
    TrailingBytes {
        /// The message.
        message: &'static str,
        /// How many.
        count: usize,
    },
}

/// What a client asks.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// List the keys.
    RequestIdentities,
    /// Sign `data` with the key whose public blob (or certificate blob) is `key_blob`.
    Sign {
        /// The key, as its SSH public key (or certificate) blob.
        key_blob: Vec<u8>,
        /// What to sign.
        data: Vec<u8>,
        /// `SSH_AGENT_RSA_SHA2_*` flags.
        flags: u32,
    },
    /// An extension request: its name (its contents are not decoded).
    Extension(String),
    /// Any other message, by type: adding, removing, locking and smartcard requests, and
    /// types this agent does not know. Answered `FAILURE` without reading its contents
    /// (which may hold a private key nobody asked us to keep).
    Other(u8),
}

impl fmt::Debug for Request {
    // Data to sign and key blobs are long and uninteresting in logs; their sizes are not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RequestIdentities => f.write_str("RequestIdentities"),
            Self::Sign {
                key_blob,
                data,
                flags,
            } => write!(
                f,
                "Sign {{ key_blob: {} bytes, data: {} bytes, flags: {flags:#x} }}",
                key_blob.len(),
                data.len()
            ),
            Self::Extension(name) => write!(f, "Extension({name:?})"),
            Self::Other(kind) => write!(f, "Other({kind} = {})", message_name(*kind)),
        }
    }
}

/// The protocol's name for a message type, for logs.
#[must_use]
pub fn message_name(kind: u8) -> &'static str {
    match kind {
        SSH_AGENT_FAILURE => "SSH_AGENT_FAILURE",
        SSH_AGENT_SUCCESS => "SSH_AGENT_SUCCESS",
        SSH_AGENTC_REQUEST_IDENTITIES => "SSH_AGENTC_REQUEST_IDENTITIES",
        SSH_AGENT_IDENTITIES_ANSWER => "SSH_AGENT_IDENTITIES_ANSWER",
        SSH_AGENTC_SIGN_REQUEST => "SSH_AGENTC_SIGN_REQUEST",
        SSH_AGENT_SIGN_RESPONSE => "SSH_AGENT_SIGN_RESPONSE",
        SSH_AGENTC_ADD_IDENTITY => "SSH_AGENTC_ADD_IDENTITY",
        SSH_AGENTC_REMOVE_IDENTITY => "SSH_AGENTC_REMOVE_IDENTITY",
        SSH_AGENTC_REMOVE_ALL_IDENTITIES => "SSH_AGENTC_REMOVE_ALL_IDENTITIES",
        SSH_AGENTC_ADD_SMARTCARD_KEY => "SSH_AGENTC_ADD_SMARTCARD_KEY",
        SSH_AGENTC_REMOVE_SMARTCARD_KEY => "SSH_AGENTC_REMOVE_SMARTCARD_KEY",
        SSH_AGENTC_LOCK => "SSH_AGENTC_LOCK",
        SSH_AGENTC_UNLOCK => "SSH_AGENTC_UNLOCK",
        SSH_AGENTC_ADD_ID_CONSTRAINED => "SSH_AGENTC_ADD_ID_CONSTRAINED",
        SSH_AGENTC_ADD_SMARTCARD_KEY_CONSTRAINED => "SSH_AGENTC_ADD_SMARTCARD_KEY_CONSTRAINED",
        SSH_AGENTC_EXTENSION => "SSH_AGENTC_EXTENSION",
        _ => "unknown",
    }
}

/// One identity in an answer: a public key (or certificate) blob and its comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityEntry {
    /// The SSH public key or certificate blob.
    pub blob: Vec<u8>,
    /// Its comment.
    pub comment: String,
}

/// What the agent answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `SSH_AGENT_FAILURE`.
    Failure,
    /// `SSH_AGENT_SUCCESS`.
    Success,
    /// The keys.
    Identities(Vec<IdentityEntry>),
    /// An SSH signature blob (`string algorithm, string signature`).
    Signature(Vec<u8>),
}

fn malformed(
    message: &'static str,
) -> impl Fn(kmssh_pki::ssh_key::encoding::Error) -> ProtocolError {
    move |e| ProtocolError::Malformed {
        message,
        detail: e.to_string(),
    }
}

fn finished(message: &'static str, rest: &[u8]) -> Result<(), ProtocolError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::TrailingBytes {
            message,
            count: rest.len(),
        })
    }
}

impl Request {
    /// Decodes one message body (the bytes after the length prefix).
    ///
    /// # Errors
    /// [`ProtocolError`] for an empty or over-long body, a field that does not decode, or
    /// trailing bytes.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        if body.len() > MAX_MESSAGE_LEN {
            return Err(ProtocolError::TooLong(body.len()));
        }
        let (&kind, mut rest) = body.split_first().ok_or(ProtocolError::Empty)?;
        match kind {
            SSH_AGENTC_REQUEST_IDENTITIES => {
                finished("SSH_AGENTC_REQUEST_IDENTITIES", rest)?;
                Ok(Self::RequestIdentities)
            }
            SSH_AGENTC_SIGN_REQUEST => {
                const NAME: &str = "SSH_AGENTC_SIGN_REQUEST";
                let key_blob = Vec::<u8>::decode(&mut rest).map_err(malformed(NAME))?;
                let data = Vec::<u8>::decode(&mut rest).map_err(malformed(NAME))?;
                let flags = u32::decode(&mut rest).map_err(malformed(NAME))?;
                finished(NAME, rest)?;
                Ok(Self::Sign {
                    key_blob,
                    data,
                    flags,
                })
            }
            SSH_AGENTC_EXTENSION => {
                // The name only: the contents belong to the extension, and none is served.
                let name = String::decode(&mut rest).map_err(malformed("SSH_AGENTC_EXTENSION"))?;
                Ok(Self::Extension(name))
            }
            other => Ok(Self::Other(other)),
        }
    }

    /// Encodes the message body (without the length prefix): what a client sends.
    ///
    /// # Errors
    /// [`ProtocolError::TooLong`] if the body would be over [`MAX_MESSAGE_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail but for lengths over u32, which the check below
        // also catches.
        let written = (|| -> kmssh_pki::ssh_key::encoding::Result<()> {
            match self {
                Self::RequestIdentities => out.push(SSH_AGENTC_REQUEST_IDENTITIES),
                Self::Sign {
                    key_blob,
                    data,
                    flags,
                } => {
                    out.push(SSH_AGENTC_SIGN_REQUEST);
                    key_blob.as_slice().encode(&mut out)?;
                    data.as_slice().encode(&mut out)?;
                    flags.encode(&mut out)?;
                }
                Self::Extension(name) => {
                    out.push(SSH_AGENTC_EXTENSION);
                    name.as_str().encode(&mut out)?;
                }
                Self::Other(kind) => out.push(*kind),
            }
            Ok(())
        })();
        check_encoded(written, out)
    }
}

fn check_encoded(
    written: kmssh_pki::ssh_key::encoding::Result<()>,
    out: Vec<u8>,
) -> Result<Vec<u8>, ProtocolError> {
    match written {
        Ok(()) if out.len() <= MAX_MESSAGE_LEN => Ok(out),
        Ok(()) => Err(ProtocolError::TooLong(out.len())),
        Err(e) => Err(ProtocolError::Malformed {
            message: "answer",
            detail: e.to_string(),
        }),
    }
}

impl Response {
    /// Encodes the message body (without the length prefix).
    ///
    /// # Errors
    /// [`ProtocolError::TooLong`] if the body would be over [`MAX_MESSAGE_LEN`] (an
    /// identity list that long is answered `FAILURE` by the agent instead).
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        let written = (|| -> kmssh_pki::ssh_key::encoding::Result<()> {
            match self {
                Self::Failure => out.push(SSH_AGENT_FAILURE),
                Self::Success => out.push(SSH_AGENT_SUCCESS),
                Self::Identities(entries) => {
                    out.push(SSH_AGENT_IDENTITIES_ANSWER);
                    u32::try_from(entries.len())
                        .map_err(|_| kmssh_pki::ssh_key::encoding::Error::Overflow)?
                        .encode(&mut out)?;
                    for entry in entries {
                        entry.blob.as_slice().encode(&mut out)?;
                        entry.comment.as_str().encode(&mut out)?;
                    }
                }
                Self::Signature(signature) => {
                    out.push(SSH_AGENT_SIGN_RESPONSE);
                    signature.as_slice().encode(&mut out)?;
                }
            }
            Ok(())
        })();
        check_encoded(written, out)
    }

    /// Decodes an answer body: what a client reads.
    ///
    /// # Errors
    /// [`ProtocolError`] for an empty, over-long or malformed answer, or an unknown type.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        if body.len() > MAX_MESSAGE_LEN {
            return Err(ProtocolError::TooLong(body.len()));
        }
        let (&kind, mut rest) = body.split_first().ok_or(ProtocolError::Empty)?;
        let response = match kind {
            SSH_AGENT_FAILURE => Self::Failure,
            SSH_AGENT_SUCCESS => Self::Success,
            SSH_AGENT_IDENTITIES_ANSWER => {
                const NAME: &str = "SSH_AGENT_IDENTITIES_ANSWER";
                let count = u32::decode(&mut rest).map_err(malformed(NAME))?;
                let mut entries = Vec::new();
                for _ in 0..count {
                    // Each entry is at least 8 bytes, so a huge count runs out of input
                    // long before it runs out of memory.
                    let blob = Vec::<u8>::decode(&mut rest).map_err(malformed(NAME))?;
                    let comment = String::decode(&mut rest).map_err(malformed(NAME))?;
                    entries.push(IdentityEntry { blob, comment });
                }
                Self::Identities(entries)
            }
            SSH_AGENT_SIGN_RESPONSE => {
                let signature =
                    Vec::<u8>::decode(&mut rest).map_err(malformed("SSH_AGENT_SIGN_RESPONSE"))?;
                Self::Signature(signature)
            }
            other => {
                return Err(ProtocolError::Malformed {
                    message: "answer",
                    detail: format!("unexpected message type {other}"),
                });
            }
        };
        finished(message_name(kind), rest)?;
        Ok(response)
    }
}

/// A frame's body and the bytes after it.
pub type FrameSplit<'a> = (&'a [u8], &'a [u8]);

/// Splits the first complete frame (`uint32 length ‖ body`) off `buffer`: `Ok(None)` when
/// more bytes are needed.
///
/// # Errors
/// [`ProtocolError::TooLong`] as soon as the length prefix says more than
/// [`MAX_MESSAGE_LEN`], before the body is read; [`ProtocolError::Empty`] for length 0.
pub fn split_frame(buffer: &[u8]) -> Result<Option<FrameSplit<'_>>, ProtocolError> {
    let Some((len, rest)) = buffer.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = frame_len(*len)?;
    Ok(rest.split_at_checked(len))
}

/// The body length a frame's 4-byte prefix announces, checked against
/// [`MAX_MESSAGE_LEN`].
///
/// # Errors
/// [`ProtocolError::TooLong`] or [`ProtocolError::Empty`].
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > MAX_MESSAGE_LEN {
        return Err(ProtocolError::TooLong(len));
    }
    if len == 0 {
        return Err(ProtocolError::Empty);
    }
    Ok(len)
}

/// `uint32 length ‖ body`.
#[must_use]
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    // Bodies are built under MAX_MESSAGE_LEN, far below u32::MAX.
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_requests_round_trip() {
        let request = Request::Sign {
            key_blob: b"blob".to_vec(),
            data: vec![7; 300],
            flags: SSH_AGENT_RSA_SHA2_512,
        };
        let body = request.encode().expect("encodes");
        assert_eq!(Request::decode(&body).expect("decodes"), request);
    }

    #[test]
    fn identities_round_trip() {
        let response = Response::Identities(vec![
            IdentityEntry {
                blob: b"one".to_vec(),
                comment: "first".into(),
            },
            IdentityEntry {
                blob: b"two".to_vec(),
                comment: String::new(),
            },
        ]);
        let body = response.encode().expect("encodes");
        assert_eq!(Response::decode(&body).expect("decodes"), response);
    }

    #[test]
    fn trailing_bytes_and_truncation_are_refused() {
        let mut body = Request::RequestIdentities.encode().expect("encodes");
        body.push(0);
        assert_eq!(
            Request::decode(&body),
            Err(ProtocolError::TrailingBytes {
                message: "SSH_AGENTC_REQUEST_IDENTITIES",
                count: 1
            })
        );
        let sign = Request::Sign {
            key_blob: vec![1; 10],
            data: vec![2; 10],
            flags: 0,
        }
        .encode()
        .expect("encodes");
        for cut in 1..sign.len() {
            assert!(Request::decode(&sign[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Request::decode(&[]), Err(ProtocolError::Empty));
    }

    #[test]
    fn a_string_longer_than_the_message_is_refused_without_allocating() {
        let mut body = vec![SSH_AGENTC_SIGN_REQUEST];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Request::decode(&body),
            Err(ProtocolError::Malformed { .. })
        ));
        let mut answer = vec![SSH_AGENT_IDENTITIES_ANSWER];
        answer.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Response::decode(&answer).is_err());
    }

    #[test]
    fn unknown_and_refused_types_are_other() {
        for kind in [
            SSH_AGENTC_ADD_IDENTITY,
            SSH_AGENTC_REMOVE_ALL_IDENTITIES,
            SSH_AGENTC_LOCK,
            200,
        ] {
            assert_eq!(Request::decode(&[kind, 1, 2, 3]), Ok(Request::Other(kind)));
        }
    }

    #[test]
    fn frames_split_and_refuse_oversized_prefixes() {
        let framed = frame(&[SSH_AGENTC_REQUEST_IDENTITIES]);
        assert_eq!(
            split_frame(&framed),
            Ok(Some((&[SSH_AGENTC_REQUEST_IDENTITIES][..], &[][..])))
        );
        assert_eq!(split_frame(&framed[..3]), Ok(None));
        assert_eq!(split_frame(&framed[..4]), Ok(None));
        let huge = (u32::try_from(MAX_MESSAGE_LEN).expect("fits") + 1).to_be_bytes();
        assert_eq!(
            split_frame(&huge),
            Err(ProtocolError::TooLong(MAX_MESSAGE_LEN + 1))
        );
        assert_eq!(split_frame(&[0, 0, 0, 0]), Err(ProtocolError::Empty));
    }
}
