//! `kmssh sign`: certificates for public keys (`ssh-keygen -s`), or for a paramiko-cloud
//! CSR.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kmssh_core::resolved_output_path;
use kmssh_pki::batch::{BatchLimits, issue_batch_paced};
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{
    CertificateParameters, CertificateSigningRequest, CertificateType, cert_path_for, issue,
    parse_subject_key, ssh_keygen, unix_now,
};

use crate::args::{CsrFormat, SignArgs};
use crate::exit::Failure;
use crate::io::{
    exists_without_force, local_key_file, open_key, read_input, read_text, refuse_output_over,
    refuse_output_over_inputs, write_output,
};

/// Issues a certificate for each public key file, written beside it as `NAME-cert.pub`
/// (stdout for `-`), 32 at a time, with a progress bar on a terminal.
pub async fn sign(args: SignArgs) -> Result<(), Failure> {
    let now = unix_now();
    let mut params = CertificateParameters::new(if args.host {
        CertificateType::Host
    } else {
        CertificateType::User
    });
    params.principals(args.principals)?.key_id(args.key_id)?;
    if let Some(serial) = args.serial {
        params.serial(serial)?;
    }
    if let Some(text) = &args.validity {
        ssh_keygen::parse_validity(text, now)?.apply(&mut params)?;
    }
    if let Some(text) = &args.backdate {
        params.backdate(Duration::from_secs(ssh_keygen::parse_duration(text)?))?;
    }
    ssh_keygen::apply_options(&mut params, &args.options)?;
    if args.allow_any_principal {
        params.allow_any_principal();
    }
    if let Some(algorithm) = args.ca_sig_alg {
        params.ca_signature_algorithm_is(algorithm)?;
    }
    // Everything is checked before the key is touched.
    params.resolve(now)?;
    let mut subjects: Vec<KeyData> = Vec::new();
    let mut targets: Vec<(String, Option<PathBuf>)> = Vec::new();
    // Every input, so that no certificate is written over one of them.
    let ca_file = local_key_file(&args.ca);
    let inputs = kmssh_core::InputFiles::new(
        args.public_keys
            .iter()
            .map(PathBuf::as_path)
            .chain(ca_file.as_deref()),
    );
    // Which input each certificate file is for, to refuse two inputs writing one file.
    let mut claimed: HashMap<PathBuf, &Path> = HashMap::new();
    for path in &args.public_keys {
        let text = read_text(path)?;
        subjects
            .push(parse_subject_key(&text).map_err(|e| Failure::from(e).about(path.display()))?);
        let comment = text.split_whitespace().nth(2).unwrap_or("").to_owned();
        let target = (path != Path::new("-")).then(|| cert_path_for(path));
        if let Some(target) = &target {
            if let Ok(entry) = resolved_output_path(target)
                && let Some(first) = claimed.insert(entry, path)
            {
                return Err(Failure::input(format!(
                    "{} and {} would both be certified as {}: sign them separately",
                    first.display(),
                    path.display(),
                    target.display()
                )));
            }
            refuse_output_over(target, &inputs)?;
            if target.symlink_metadata().is_ok() && !args.force {
                return Err(exists_without_force(target));
            }
        }
        targets.push((comment, target));
    }
    let ca = open_key(&args.ca, &args.key, subjects.len()).await?;
    let progress = progress_bar(subjects.len());
    let limits = BatchLimits {
        concurrency: args.concurrency.max(1),
        per_second: args.max_rate,
    };
    let issued = issue_batch_paced(
        ca.as_ref(),
        &params,
        &subjects,
        limits,
        tokio::time::sleep,
        |done| progress.set_position(done as u64),
    )
    .await?;
    progress.finish_and_clear();
    // Every certificate that was issued is written; the first failure is the error.
    let mut failures = Vec::new();
    for (result, (comment, target)) in issued.into_iter().zip(targets) {
        let written = match result {
            Err(e) => Err(Failure::from(e).about(
                target
                    .as_deref()
                    .map_or_else(|| "stdin".to_owned(), |t| t.display().to_string()),
            )),
            Ok(cert) => write_output(
                target.as_deref(),
                format!("{}\n", cert.cert_string(&comment)).as_bytes(),
                args.force,
            ),
        };
        failures.extend(written.err());
    }
    let more = failures.len().saturating_sub(1);
    match failures.into_iter().next() {
        None => Ok(()),
        Some(first) if more == 0 => Err(first),
        Some(first) => Err(first.about_more(more)),
    }
}

/// A progress bar on a terminal for more than one certificate, else nothing.
fn progress_bar(len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if len < 2 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} certificates, {per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `kmssh sign --csr`: every field of the request honoured, as paramiko-cloud does.
/// Only `--ca`, the key flags, `--allow-any-principal` and `--force` (for an existing
/// `-o` file) of `args` apply: clap refuses the certificate flags beside `--csr`.
pub async fn sign_csr(
    args: &SignArgs,
    path: &Path,
    format: CsrFormat,
    output: Option<&Path>,
) -> Result<(), Failure> {
    if let Some(output) = output {
        let ca_file = local_key_file(&args.ca);
        let mut inputs = vec![path];
        inputs.extend(ca_file.as_deref());
        refuse_output_over_inputs(output, &inputs)?;
        if output.symlink_metadata().is_ok() && !args.force {
            return Err(exists_without_force(output));
        }
    }
    let raw = read_input(path)?;
    let request = match format {
        CsrFormat::Binary => CertificateSigningRequest::from_proto(&raw)?,
        CsrFormat::Base64 => CertificateSigningRequest::from_base64(&raw)?,
    };
    let mut params = request.to_parameters(args.allow_any_principal)?;
    if let Some(algorithm) = args.ca_sig_alg {
        params.ca_signature_algorithm_is(algorithm)?;
    }
    let ca_key = open_key(&args.ca, &args.key, 1).await?;
    let cert = issue(ca_key.as_ref(), &request.public_key, &params).await?;
    write_output(
        output,
        format!("{}\n", cert.cert_string(&request.key_id)).as_bytes(),
        args.force,
    )
}
