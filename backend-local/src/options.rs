//! How a local key signs: [`LocalOptions`], filled in code, from the registry's
//! [`Options`], or from a `local:` URI's query parameters.

use std::path::PathBuf;
use std::str::FromStr;

use kmssh_core::{
    BackendOptions, Curve, Error, ErrorKind, KeyFamily, KeySpec, KeyUri, Options, Result,
};

use crate::{EPHEMERAL, SCHEME, SigningEngine};

/// How a local key signs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalOptions {
    /// The signing engine; `None` (the default, `engine=auto` in a URI) picks one by
    /// [`LocalOptions::expected_signatures`] and switches to AWS-LC once a key has made
    /// enough signatures for it to pay (see [`crate::AUTO_AWS_LC_FROM_SIGNATURES`]).
    pub engine: Option<SigningEngine>,
    /// Verify each signature against the public key before returning it (default off:
    /// an in-process signer is trusted the way `ssh-keygen` trusts its own key).
    pub verify: bool,
    /// How many signatures the caller expects to make, for the automatic engine choice.
    pub expected_signatures: Option<u64>,
    /// Use a key file whose mode grants group or others any permission (`mode & 0o077`
    /// not zero). Off by default: such a file is refused, as ssh refuses an "UNPROTECTED
    /// PRIVATE KEY FILE", with the `chmod 600` that fixes it. `permissions=any` in a URI
    /// turns it on, `permissions=owner` off. Keys in memory are unaffected.
    pub allow_unprotected: bool,
}

impl BackendOptions for LocalOptions {
    /// Local keys read no environment: the defaults.
    fn from_env() -> Result<Self> {
        Ok(Self::default())
    }

    /// The options given in code (else the defaults), with the caller's expected number
    /// of signatures when they did not set one.
    fn from_registry(options: &Options) -> Result<Self> {
        let mut local = options.get::<Self>().copied().unwrap_or_default();
        if local.expected_signatures.is_none() {
            local.expected_signatures = options.expected_signatures();
        }
        Ok(local)
    }
}

/// What a `local:` URI names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalLocation {
    /// `local:ephemeral[?type=…&bits=…&curve=…]`: a new key of this kind in memory.
    Ephemeral(KeySpec),
    /// `local:PATH`: a key file.
    File(PathBuf),
}

/// A `local:` URI taken apart: where the key is, and the options its parameters set on
/// top of `base`.
///
/// `type` (`ecdsa`, the default, `rsa` or `ed25519`), `bits` (RSA: 2048 to 8192, 3072 by
/// default; ECDSA: 256, 384 or 521) and `curve` (ECDSA: `p256`, the default, `p384`,
/// `p521`) choose an ephemeral key's kind, as `--type`, `--bits` and `--curve` do
/// ([`KeySpec::new`]); a key file has its own kind, so they are refused there.
///
/// # Errors
/// [`ErrorKind::InvalidUri`] for another scheme, an unknown parameter or value, or
/// `type`, `bits` or `curve` on a key file; [`ErrorKind::UnsupportedAlgorithm`] for a
/// key kind kmssh does not make (with the URI named).
pub fn parse_uri(uri: &KeyUri, base: LocalOptions) -> Result<(LocalLocation, LocalOptions)> {
    let bad = |why: String| Error::new(ErrorKind::InvalidUri, why).with_context("uri", uri);
    if uri.scheme() != SCHEME {
        return Err(bad(format!(
            "the local backend opens `{SCHEME}:` URIs, not `{}:`",
            uri.scheme()
        )));
    }
    let mut options = base;
    let (mut family, mut bits, mut curve) = (None, None, None);
    for (name, value) in uri.query_pairs() {
        match name {
            "type" => {
                family = Some(KeyFamily::from_str(value).map_err(|e| e.with_context("uri", uri))?)
            }
            "bits" => {
                bits = Some(value.parse::<u32>().map_err(|_| {
                    bad(format!(
                        "`bits={value}`: expected a number of bits (RSA 2048 to 8192; ECDSA 256, 384 or 521)"
                    ))
                })?)
            }
            "curve" => {
                curve = Some(Curve::from_str(value).map_err(|e| e.with_context("uri", uri))?)
            }
            "engine" => {
                options.engine = match value {
                    "auto" => None,
                    other => Some(
                        SigningEngine::from_str(other).map_err(|e| e.with_context("uri", uri))?,
                    ),
                }
            }
            "verify" => {
                options.verify = match value {
                    "" | "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => return Err(bad(format!("`verify={other}`: expected true or false"))),
                }
            }
            "permissions" => {
                options.allow_unprotected = match value {
                    "any" => true,
                    "owner" => false,
                    other => {
                        return Err(bad(format!(
                            "`permissions={other}`: expected owner (the default: the key file \
                             must be mode 0600 or stricter) or any"
                        )));
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{other}`: the local backend takes type, bits, curve, \
                     engine, verify and permissions"
                )));
            }
        }
    }
    let location = if uri.body() == EPHEMERAL {
        // `curve` alone says ECDSA; nothing at all is ECDSA P-256.
        let family = family.unwrap_or(KeyFamily::Ecdsa);
        LocalLocation::Ephemeral(
            KeySpec::new(family, bits, curve).map_err(|e| e.with_context("uri", uri))?,
        )
    } else if family.is_some() || bits.is_some() || curve.is_some() {
        return Err(bad(
            "`type`, `bits` and `curve` apply to `local:ephemeral` only: a key file has its own \
             kind (to make a new file, pass the kind to `--create`)"
                .into(),
        ));
    } else {
        LocalLocation::File(PathBuf::from(uri.body()))
    };
    Ok((location, options))
}

/// The `local:ephemeral` URI naming a new key of kind `spec`: `?curve=p384` for ECDSA
/// (as before RSA and Ed25519 existed), `?type=rsa&bits=3072`, `?type=ed25519`.
///
/// # Errors
/// [`ErrorKind::InvalidUri`] only if the URI does not parse (it always does).
pub fn ephemeral_uri(spec: KeySpec) -> Result<KeyUri> {
    let query = match spec {
        KeySpec::Ecdsa(curve) => format!("curve={}", curve.ssh_name().trim_start_matches("nist")),
        KeySpec::Rsa(bits) => format!("type=rsa&bits={bits}"),
        KeySpec::Ed25519 => "type=ed25519".to_owned(),
    };
    KeyUri::parse(&format!("{SCHEME}:{EPHEMERAL}?{query}"))
}
