//! ssh-keygen's `-O` options, local key creation, and certificate display.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use kmssh_pki::{Certificate, CertificateParameters, CriticalOption, Extension};

use crate::{CurveArg, Failure, input};

/// The five extensions ssh-keygen grants by default, by name.
const DEFAULT_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Applies `-O` options in order, as ssh-keygen does: `clear` empties the permissions,
/// `no-*`/`permit-*` remove and add, `extension:`/`critical:` add custom entries.
pub fn apply(
    params: &mut CertificateParameters,
    options: &[String],
    host: bool,
) -> Result<(), Failure> {
    let mut extensions: BTreeSet<(String, String)> = if host {
        BTreeSet::new()
    } else {
        DEFAULT_EXTENSIONS
            .iter()
            .map(|e| ((*e).to_owned(), String::new()))
            .collect()
    };
    let mut touched = false;
    let permission = |name: &str| match name.to_ascii_lowercase().as_str() {
        "x11-forwarding" => Some("permit-X11-forwarding"),
        "agent-forwarding" => Some("permit-agent-forwarding"),
        "port-forwarding" => Some("permit-port-forwarding"),
        "pty" => Some("permit-pty"),
        "user-rc" => Some("permit-user-rc"),
        _ => None,
    };
    for option in options {
        let (name, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
        if option == "clear" {
            extensions.clear();
            touched = true;
        } else if let Some(p) = name.strip_prefix("no-").and_then(permission) {
            extensions.retain(|(n, _)| n != p);
            touched = true;
        } else if let Some(p) = name.strip_prefix("permit-").and_then(permission) {
            extensions.insert((p.to_owned(), String::new()));
            touched = true;
        } else if name == "no-touch-required" {
            extensions.insert((name.to_owned(), String::new()));
            touched = true;
        } else if let Some(custom) = name.strip_prefix("extension:") {
            extensions.insert((custom.to_owned(), value.to_owned()));
            touched = true;
        } else if let Some(custom) = name.strip_prefix("critical:") {
            params.critical_option(CriticalOption::parse(custom, value)?)?;
        } else if matches!(name, "force-command" | "source-address" | "verify-required") {
            params.critical_option(CriticalOption::parse(name, value)?)?;
        } else {
            return Err(input(format!("unknown -O option `{option}`")));
        }
    }
    if touched {
        params.no_extensions();
        for (name, value) in extensions {
            params.extension(Extension::parse(&name, &value)?)?;
        }
    }
    Ok(())
}

/// Writes a new OpenSSH private key file (mode 0600), refusing to replace one.
pub fn create_local_key(path: &Path, curve: CurveArg) -> Result<(), Failure> {
    use kmssh_pki::ssh_key::{
        Algorithm, EcdsaCurve, LineEnding, PrivateKey, getrandom::SysRng, rand_core::UnwrapErr,
    };
    use std::os::unix::fs::OpenOptionsExt;
    let curve = match curve {
        CurveArg::P256 => EcdsaCurve::NistP256,
        CurveArg::P384 => EcdsaCurve::NistP384,
        CurveArg::P521 => EcdsaCurve::NistP521,
    };
    let key = PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ecdsa { curve })
        .map_err(|e| input(format!("cannot generate a key: {e}")))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| input(format!("cannot encode the key: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| input(format!("{}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| input(format!("{}: {e}", path.display())))
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

/// Prints a certificate as `ssh-keygen -L` lays it out, or as JSON.
pub fn print_certificate(path: &Path, cert: &Certificate, json: bool) {
    let inner = cert.as_ssh_key();
    let fingerprint =
        |k: &kmssh_pki::ssh_key::public::KeyData| k.fingerprint(Default::default()).to_string();
    if json {
        let value = serde_json::json!({
            "type": inner.algorithm().to_certificate_type(),
            "cert_type": cert.cert_type().as_str(),
            "public_key": fingerprint(inner.public_key()),
            "signing_ca": fingerprint(inner.signature_key()),
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
    println!("{}:", path.display());
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
        inner.signature_key().algorithm()
    );
    println!("        Key ID: \"{}\"", inner.key_id());
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
                println!("                {item}");
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
