//! `kmssh inspect`: a certificate laid out as `ssh-keygen -L` shows it, or as JSON.

use std::path::Path;

use kmssh_pki::{Certificate, escape_for_display};

use crate::exit::Failure;
use crate::io::read_text;

/// Shows a certificate file.
pub fn inspect(path: &Path, json: bool) -> Result<(), Failure> {
    let cert = Certificate::from_openssh(&read_text(path)?)?;
    print_certificate(path, &cert, json);
    Ok(())
}

fn show_time(t: u64) -> String {
    match t {
        0 => "always".to_owned(),
        u64::MAX => "forever".to_owned(),
        t => i64::try_from(t)
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| t.to_string()),
    }
}

/// The key type name ssh-keygen prints before a fingerprint.
fn type_label(algorithm: &kmssh_pki::ssh_key::Algorithm) -> &'static str {
    use kmssh_pki::ssh_key::Algorithm;
    match algorithm {
        Algorithm::Ed25519 => "ED25519",
        Algorithm::Ecdsa { .. } => "ECDSA",
        Algorithm::Rsa { .. } => "RSA",
        Algorithm::Dsa => "DSA",
        Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK",
        Algorithm::SkEd25519 => "ED25519-SK",
        _ => "UNKNOWN",
    }
}

/// Text from the certificate, with control and invisible characters as escapes.
fn show(text: &str) -> std::borrow::Cow<'_, str> {
    escape_for_display(text)
}

/// Prints a certificate as `ssh-keygen -L` lays it out (every requester-chosen field
/// escaped), or as JSON (whose strings escape control characters themselves).
fn print_certificate(path: &Path, cert: &Certificate, json: bool) {
    let inner = cert.as_ssh_key();
    let fingerprint =
        |k: &kmssh_pki::ssh_key::public::KeyData| k.fingerprint(Default::default()).to_string();
    if json {
        let value = serde_json::json!({
            "type": inner.algorithm().to_certificate_type(),
            "cert_type": cert.cert_type().as_str(),
            "public_key": fingerprint(inner.public_key()),
            "signing_ca": fingerprint(inner.signature_key()),
            "signature_algorithm": inner.signature().algorithm().as_str(),
            "key_id": inner.key_id(),
            "serial": inner.serial(),
            "valid_after": inner.valid_after(),
            "valid_before": inner.valid_before(),
            "principals": inner.valid_principals(),
            "critical_options": inner.critical_options().0,
            "extensions": inner.extensions().0,
        });
        println!("{value:#}");
        return;
    }
    // Every field the requester chose is shown escaped: a newline or an escape sequence
    // in it must not fake a line or reach the terminal.
    println!("{}:", show(&path.display().to_string()));
    println!(
        "        Type: {} {} certificate",
        inner.algorithm().to_certificate_type(),
        cert.cert_type().as_str()
    );
    println!(
        "        Public key: {}-CERT {}",
        type_label(&inner.algorithm()),
        fingerprint(inner.public_key())
    );
    println!(
        "        Signing CA: {} {} (using {})",
        type_label(&inner.signature_key().algorithm()),
        fingerprint(inner.signature_key()),
        // The signature's algorithm, as ssh-keygen shows it: an RSA CA's key type is
        // `ssh-rsa` but it signs `rsa-sha2-512` or `rsa-sha2-256`.
        inner.signature().algorithm()
    );
    println!("        Key ID: \"{}\"", show(inner.key_id()));
    println!("        Serial: {}", inner.serial());
    // ssh-keygen's wording for open-ended windows.
    let validity = match (inner.valid_after(), inner.valid_before()) {
        (0, u64::MAX) => "forever".to_owned(),
        (0, before) => format!("before {}", show_time(before)),
        (after, u64::MAX) => format!("after {}", show_time(after)),
        (after, before) => format!("from {} to {}", show_time(after), show_time(before)),
    };
    println!("        Valid: {validity}");
    let list = |title: &str, items: Vec<String>| {
        if items.is_empty() {
            println!("        {title}: (none)");
        } else {
            println!("        {title}: ");
            for item in items {
                println!("                {}", show(&item));
            }
        }
    };
    list("Principals", inner.valid_principals().to_vec());
    let pairs = |map: &kmssh_pki::ssh_key::certificate::OptionsMap| {
        map.iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k} {v}")
                }
            })
            .collect()
    };
    list("Critical Options", pairs(inner.critical_options()));
    list("Extensions", pairs(inner.extensions()));
}
