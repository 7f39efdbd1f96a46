//! The main job on the local backend, no cloud account: open a CA key, issue a user
//! certificate for a fresh Ed25519 key, write `id_ed25519-cert.pub` and the CA line, and
//! show what `ssh-keygen -L` makes of the certificate.
//!
//! ```text
//! cargo xtask demo [CA-KEY-URI] [OUTPUT-DIR]
//! ```
//! The CA defaults to `local:ephemeral?curve=p256`; try `local:/path/to/ecdsa_key`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
use kmssh_backend_local as _;
use kmssh_pki::{CertificateParameters, cert_path_for, issue, parse_subject_key, pubkey_string};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let ca_uri = args
        .next()
        .unwrap_or_else(|| "local:ephemeral?curve=p256".to_owned());
    let out_dir = args
        .next()
        .map_or_else(|| PathBuf::from("target/kmssh-demo"), PathBuf::from);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;

    let ca = kmssh_core::open(&ca_uri).await.map_err(|e| e.to_string())?;
    let ca_line = pubkey_string(ca.public_key(), "kmssh demo CA");
    let ca_path = out_dir.join("ca.pub");
    std::fs::write(&ca_path, format!("{ca_line}\n")).map_err(|e| e.to_string())?;

    let user_key = out_dir.join("id_ed25519");
    let _ = std::fs::remove_file(&user_key);
    let _ = std::fs::remove_file(user_key.with_extension("pub"));
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-C", "demo-user", "-f"])
        .arg(&user_key)
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if !keygen.success() {
        return Err("ssh-keygen could not make the user key".into());
    }
    let subject_line =
        std::fs::read_to_string(user_key.with_extension("pub")).map_err(|e| e.to_string())?;
    let subject = parse_subject_key(&subject_line).map_err(|e| e.to_string())?;

    let user = kmssh_conformance::openssh::current_user();
    let mut params = CertificateParameters::user();
    params
        .principal(user.clone())
        .and_then(|p| p.key_id(format!("{user}@kmssh-demo")))
        .map_err(|e| e.to_string())?;
    let cert = issue(ca.as_ref(), &subject, &params)
        .await
        .map_err(|e| e.to_string())?;
    let cert_path = cert_path_for(&user_key);
    std::fs::write(&cert_path, cert.cert_string("demo-user") + "\n").map_err(|e| e.to_string())?;

    println!("CA key:      {ca_uri} ({})", ca.algorithm());
    println!("CA line:     {} (for TrustedUserCAKeys)", ca_path.display());
    println!("certificate: {}\n", cert_path.display());
    let listing = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert_path)
        .status()
        .map_err(|e| format!("ssh-keygen -L: {e}"))?;
    if listing.success() {
        Ok(())
    } else {
        Err("ssh-keygen -L refused the certificate".into())
    }
}
