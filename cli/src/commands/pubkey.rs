//! `kmssh pubkey`: the CA's public key for `TrustedUserCAKeys` / `@cert-authority`, or
//! as SubjectPublicKeyInfo PEM.

use kmssh_pki::pubkey_string;

use crate::args::{KeyArgs, PubkeyFormat};
use crate::exit::Failure;
use crate::io::{open_key, write_output};

/// Prints the key's public half.
pub async fn pubkey(
    ca: &str,
    key: &KeyArgs,
    comment: &str,
    format: PubkeyFormat,
) -> Result<(), Failure> {
    let key = open_key(ca, key, 1).await?;
    let text = match format {
        PubkeyFormat::Openssh => format!("{}\n", pubkey_string(key.public_key(), comment)),
        PubkeyFormat::Pem => key.public_key().to_pem()?,
    };
    write_output(None, text.as_bytes(), false)
}
