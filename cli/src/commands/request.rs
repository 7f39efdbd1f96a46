//! `kmssh request`: a certificate from a signing service, checked against the service's
//! CA key before it is written; or, with `--ca`, that CA key's OpenSSH line.

use std::path::{Path, PathBuf};

use kmssh_pki::{
    CertificateParameters, CertificateSigningRequest, CertificateType, CriticalOption, Extension,
    cert_path_for, parse_subject_key, ssh_keygen, unix_now,
};
use kmssh_server::wire::CloudProvider;
use kmssh_server::{Client, ClientOptions};

use crate::args::{ProviderArg, RequestArgs};
use crate::exit::Failure;
use crate::io::{
    exists_without_force, read_input, read_text, refuse_output_over_inputs, write_output,
};

/// The environment variable holding the bearer token when neither `--token` nor
/// `--token-file` is given.
const TOKEN_ENV: &str = "KMSSH_TOKEN";

/// Requests a certificate (or prints the CA line with `--ca`, writes the KRL with
/// `--krl`, revokes with `--revoke-*`).
pub async fn request(args: RequestArgs) -> Result<(), Failure> {
    if !args.revoke_serials.is_empty()
        || args.revoke_key_id.is_some()
        || args.revoke_principal.is_some()
    {
        return revoke(&args).await;
    }
    if args.krl {
        let mut client = connect(&args).await?;
        let ca = client.certificate_authority(&args.key).await?;
        let (krl, bytes) = client.krl(&args.key, Some(&ca)).await?;
        let target = args.output.as_deref().filter(|p| *p != Path::new("-"));
        write_output(target, &bytes, args.force)?;
        eprintln!(
            "KRL version {}: {} revoked serials",
            krl.version,
            krl.counts().serials
        );
        return Ok(());
    }
    if args.ca {
        let mut client = connect(&args).await?;
        let ca = client.certificate_authority(&args.key).await?;
        let line = kmssh_pki::ssh_key::PublicKey::new(ca, "")
            .to_openssh()
            .map_err(|e| Failure::input(format!("the CA key cannot be encoded: {e}")))?;
        return write_output(None, format!("{}\n", line.trim_end()).as_bytes(), false);
    }
    let Some(public_key) = args.public_key.clone() else {
        return Err(Failure::input("give the public key file to certify"));
    };
    // Everything local is checked before the service is asked.
    let text = read_text(&public_key)?;
    let subject =
        parse_subject_key(&text).map_err(|e| Failure::from(e).about(public_key.display()))?;
    let comment = text.split_whitespace().nth(2).unwrap_or("").to_owned();
    let target = output_path(&args, &public_key)?;
    let csr = signing_request(&args, subject)?;

    let mut client = connect(&args).await?;
    let ca = client.certificate_authority(&args.key).await?;
    let certificate = client.sign(&args.key, &csr, Some(&ca)).await?;
    write_output(
        target.as_deref(),
        format!("{}\n", certificate.cert_string(&comment)).as_bytes(),
        args.force,
    )?;
    if let Some(target) = &target {
        eprintln!(
            "{}: serial {}, valid until {}",
            target.display(),
            certificate.as_ssh_key().serial(),
            super::ledger::show_time(certificate.as_ssh_key().valid_before())
        );
    }
    Ok(())
}

/// Revokes through the service and says what it did, one line.
async fn revoke(args: &RequestArgs) -> Result<(), Failure> {
    let mut client = connect(args).await?;
    let answer = client
        .revoke(
            &args.key,
            &args.revoke_serials,
            args.revoke_key_id.as_deref().unwrap_or(""),
            args.revoke_principal.as_deref().unwrap_or(""),
            &args.reason,
        )
        .await?;
    let list = |serials: &[u64]| {
        serials
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "revoked serials [{}]; already revoked [{}]; KRL version {}",
        list(&answer.revoked),
        list(&answer.already_revoked),
        answer.krl_version
    );
    Ok(())
}

/// Where the certificate goes: `-o`, else beside the public key; `None` is stdout.
fn output_path(args: &RequestArgs, public_key: &Path) -> Result<Option<PathBuf>, Failure> {
    let target = match &args.output {
        Some(path) if path == Path::new("-") => None,
        Some(path) => Some(path.clone()),
        None if public_key == Path::new("-") => None,
        None => Some(cert_path_for(public_key)),
    };
    if let Some(target) = &target {
        let mut inputs = vec![public_key];
        inputs.extend(args.token_file.as_deref());
        inputs.extend(args.ca_cert.as_deref());
        inputs.extend(args.client_cert.as_deref());
        inputs.extend(args.client_key.as_deref());
        refuse_output_over_inputs(target, &inputs)?;
        if target.symlink_metadata().is_ok() && !args.force {
            return Err(exists_without_force(target));
        }
    }
    Ok(target)
}

/// The request, from ssh-keygen's flags. A start or end `-V` leaves out stays 0, which the
/// service's policy fills in (now − backdate, start + max_validity).
fn signing_request(
    args: &RequestArgs,
    public_key: kmssh_pki::ssh_key::public::KeyData,
) -> Result<CertificateSigningRequest, Failure> {
    let now = unix_now();
    let cert_type = if args.host {
        CertificateType::Host
    } else {
        CertificateType::User
    };
    let (valid_after, valid_before) = match &args.validity {
        Some(text) => {
            let window = ssh_keygen::parse_validity(text, now)?;
            (window.after.unwrap_or(0), window.before.unwrap_or(0))
        }
        None => (0, 0),
    };
    // `-O` as `kmssh sign` reads it (user certificates start from ssh-keygen's five
    // permissions); only its options and extensions are taken from the parameters.
    let mut params = CertificateParameters::new(cert_type);
    ssh_keygen::apply_options(&mut params, &args.options)?;
    params.allow_any_principal();
    let resolved = params.resolve(now)?;
    let critical_options = resolved
        .critical_options
        .iter()
        .map(|(name, value)| CriticalOption::parse(name, value))
        .collect::<Result<Vec<_>, _>>()?;
    let extensions = resolved
        .extensions
        .iter()
        .map(|(name, value)| Extension::parse(name, value))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CertificateSigningRequest {
        cert_type,
        critical_options,
        extensions,
        key_id: args.key_id.clone(),
        serial: args.serial.unwrap_or(0),
        principals: args.principals.clone(),
        valid_after,
        valid_before,
        public_key,
    })
}

async fn connect(args: &RequestArgs) -> Result<Client, Failure> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(read_text(path)?.trim().to_owned()),
        (None, None) => std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty()),
    };
    let client_identity = match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => Some((read_input(cert)?, read_input(key)?)),
        _ => None,
    };
    let options = ClientOptions {
        server: args.server.clone(),
        ca_certificate: args.ca_cert.as_deref().map(read_input).transpose()?,
        client_identity,
        token,
        provider: args.provider.map(|p| match p {
            ProviderArg::Aws => CloudProvider::Aws,
            ProviderArg::Azure => CloudProvider::Azure,
            ProviderArg::Gcp => CloudProvider::Gcp,
        }),
        timeout: None,
    };
    Ok(Client::connect(options).await?)
}
