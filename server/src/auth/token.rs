//! Opaque bearer tokens, known only by their SHA-256.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthConfigError, AuthError, CallerConfig, base_attributes, identity};
use crate::{AuthMethod, Identity};

struct TokenCaller {
    digest: [u8; 32],
    caller: String,
    policy: String,
}

/// The callers that authenticate with an opaque token.
#[derive(Default)]
pub(super) struct TokenCallers(Vec<TokenCaller>);

impl TokenCallers {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn add(&mut self, caller: &CallerConfig, hex: &str) -> Result<(), AuthConfigError> {
        let digest = parse_digest(hex).ok_or_else(|| {
            AuthConfigError::caller(
                &caller.name,
                "token_sha256 must be 64 lowercase hex digits (the SHA-256 of the token)",
            )
        })?;
        if let Some(other) = self.0.iter().find(|known| known.digest == digest) {
            return Err(AuthConfigError::caller(
                &caller.name,
                format!("token_sha256 is also caller `{}`'s", other.caller),
            ));
        }
        self.0.push(TokenCaller {
            digest,
            caller: caller.name.clone(),
            policy: caller.policy.clone(),
        });
        Ok(())
    }

    pub(super) fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        let digest = Sha256::digest(token.as_bytes());
        // Compare digests in constant time and against every caller, so neither the timing of
        // one comparison nor where the match is tells anything about the configured tokens.
        let mut found = None;
        for known in &self.0 {
            if bool::from(known.digest.as_slice().ct_eq(digest.as_slice())) && found.is_none() {
                found = Some(known);
            }
        }
        let known = found.ok_or(AuthError::UnknownToken)?;
        Ok(identity(
            &known.caller,
            &known.policy,
            AuthMethod::Token,
            base_attributes(&known.caller),
        ))
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut digest = [0; 32];
    for (byte, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing() {
        let hex = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        let digest = parse_digest(hex).expect("valid");
        assert_eq!(digest[0], 0x2b);
        assert_eq!(digest[31], 0x5b);
        assert!(parse_digest(&hex.to_uppercase()).is_none());
        assert!(parse_digest(&hex[1..]).is_none());
        assert!(parse_digest(&format!("{}g", &hex[1..])).is_none());
    }
}
