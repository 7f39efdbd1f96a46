//! `kmssh krl`: an OpenSSH key revocation list written, updated, signed or checked.

use std::path::{Path, PathBuf};

use kmssh_pki::krl::{Krl, parse_serials};
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{parse_trusted_ca_keys, sign_sshsig, ssh_public_key, sshsig_to_pem, unix_now};

use crate::args::{KeyArgs, KrlArgs};
use crate::exit::{Class, Failure};
use crate::io::{
    exists_without_force, local_key_file, open_key, read_bounded, read_text,
    refuse_output_over_inputs, write_output,
};

/// The largest KRL read: far above what 100,000 revoked serials take (about 20 KB).
const MAX_KRL_BYTES: u64 = 16 * 1024 * 1024;

/// Writes, updates or checks a KRL.
pub async fn run(args: KrlArgs) -> Result<(), Failure> {
    match &args.check {
        Some(krl) => check(krl, &args.files),
        None => write(args).await,
    }
}

fn read_krl(path: &Path) -> Result<Krl, Failure> {
    Krl::from_bytes(&read_bounded(path, MAX_KRL_BYTES)?)
        .map_err(|e| Failure::from(e).about(path.display()))
}

/// Prints `FILE: ok` or `FILE: REVOKED (why)` for each file, as `ssh-keygen -Q` does.
fn check(krl_path: &Path, files: &[PathBuf]) -> Result<(), Failure> {
    if files.is_empty() {
        return Err(Failure::input(
            "--check needs certificate or public key files",
        ));
    }
    let krl = read_krl(krl_path)?;
    let mut report = String::new();
    let mut revoked = 0;
    for file in files {
        let line = read_text(file)?;
        match krl
            .check_openssh_line(&line)
            .map_err(|e| Failure::from(e).about(file.display()))?
        {
            Some(why) => {
                revoked += 1;
                report.push_str(&format!("{}: REVOKED ({why})\n", file.display()));
            }
            None => report.push_str(&format!("{}: ok\n", file.display())),
        }
    }
    write_output(None, report.as_bytes(), false)?;
    if revoked > 0 {
        return Err(Failure::new(
            Class::Revoked,
            format!("{revoked} of {} revoked", files.len()),
        ));
    }
    Ok(())
}

async fn write(args: KrlArgs) -> Result<(), Failure> {
    if args.from_ledger.is_some()
        && args.key_id.is_none()
        && args.principal.is_none()
        && args.issued_after.is_none()
    {
        return Err(Failure::input(
            "--from-ledger needs --key-id, --principal or --issued-after: which certificates to revoke",
        ));
    }
    let ca = args.ca.as_deref().unwrap_or_default();
    let Some(output) = args.output.clone().or_else(|| args.update.clone()) else {
        return Err(Failure::input(
            "give -o FILE, or --update FILE to change a KRL in place",
        ));
    };
    let in_place = args
        .update
        .as_ref()
        .is_some_and(|update| update == &output || kmssh_core::same_file(&output, update));
    let ca_file = Path::new(ca).is_file().then(|| PathBuf::from(ca));
    let mut inputs: Vec<&Path> = args.revoke_key.iter().map(PathBuf::as_path).collect();
    inputs.extend(args.revoke_key_hash.iter().map(PathBuf::as_path));
    inputs.extend(ca_file.as_deref());
    let key_file = local_key_file(ca);
    inputs.extend(key_file.as_deref());
    refuse_output_over_inputs(&output, &inputs)?;
    if !in_place && !args.force && output.symlink_metadata().is_ok() {
        return Err(exists_without_force(&output));
    }

    let mut krl = match &args.update {
        Some(path) => read_krl(path)?,
        None => Krl::new(),
    };
    // The CA: its public key from a file, or the key itself (which --sign needs).
    let (ca_key, signer) = match &ca_file {
        Some(path) => {
            let keys = parse_trusted_ca_keys(&read_text(path)?)
                .map_err(|e| Failure::from(e).about(path.display()))?;
            let [key] = keys.as_slice() else {
                return Err(Failure::input(format!(
                    "{}: {} keys; the KRL's CA must be one key",
                    path.display(),
                    keys.len()
                )));
            };
            (key.clone(), None)
        }
        None => {
            let key_args = KeyArgs::existing();
            let key = open_key(ca, &key_args, 1).await?;
            (ssh_public_key(key.public_key()), Some(key))
        }
    };
    if args.sign && signer.is_none() {
        return Err(Failure::input(
            "--sign needs the CA key (a key URI), not its public key file",
        ));
    }
    for spec in &args.revoke_serial {
        let (lo, hi) = parse_serials(spec)?;
        krl.revoke_serials(Some(&ca_key), lo, hi)?;
    }
    if let Some(url) = &args.from_ledger {
        revoke_from_ledger(&mut krl, &ca_key, url, &args).await?;
    }
    for id in &args.revoke_key_id {
        krl.revoke_key_id(Some(&ca_key), id)?;
    }
    for path in &args.revoke_key {
        krl.revoke_key(&public_key(path)?)?;
    }
    for path in &args.revoke_key_hash {
        krl.revoke_key_sha256(&public_key(path)?)?;
    }
    if let Some(comment) = &args.comment {
        krl.comment.clone_from(comment);
    }
    krl.release(unix_now());
    let bytes = krl.to_bytes();
    let replace = in_place || args.force;
    write_output(Some(&output), &bytes, replace)?;
    if let Some(key) = &signer
        && args.sign
    {
        let signature = sshsig_to_pem(&sign_sshsig(key.as_ref(), "file", &bytes).await?)?;
        let mut sig_path = output.clone().into_os_string();
        sig_path.push(".sig");
        write_output(Some(Path::new(&sig_path)), signature.as_bytes(), true)?;
    }
    let counts = krl.counts();
    eprintln!(
        "{}: version {}, {} serials, {} key ids, {} keys revoked",
        output.display(),
        krl.version,
        counts.serials,
        counts.key_ids,
        counts.keys
    );
    Ok(())
}

/// Revokes, by serial, the certificates `ca_key` issued that the ledger at `url` lists
/// under the `--key-id`/`--principal`/`--issued-after` filter.
async fn revoke_from_ledger(
    krl: &mut Krl,
    ca_key: &KeyData,
    url: &str,
    args: &KrlArgs,
) -> Result<(), Failure> {
    let filter = kmssh_server::ledger::LedgerFilter {
        ca_fingerprint: Some(
            ca_key
                .fingerprint(kmssh_pki::ssh_key::HashAlg::Sha256)
                .to_string(),
        ),
        key_id: args.key_id.clone(),
        principal: args.principal.clone(),
        issued_after: args.issued_after,
        ..Default::default()
    };
    let ledger = super::ledger::open(url).await?;
    let records = ledger.list(&filter).await;
    ledger.close().await;
    let records = records?;
    let mut revoked = 0usize;
    for record in &records {
        if record.serial == 0 {
            // OpenSSH ignores serial 0 in a KRL; revoking its key id or key would reach
            // other certificates, so that choice is left to the operator.
            eprintln!(
                "kmssh: ledger: serial 0 (key id {}) cannot be revoked by serial: use --revoke-key-id or --revoke-key",
                kmssh_pki::escape_for_display(&record.key_id)
            );
            continue;
        }
        krl.revoke_serials(Some(ca_key), record.serial, record.serial)?;
        revoked += 1;
    }
    eprintln!("ledger: {revoked} certificates of the CA to revoke by serial");
    Ok(())
}

fn public_key(path: &Path) -> Result<KeyData, Failure> {
    let line = read_text(path)?;
    kmssh_pki::ssh_key::PublicKey::from_openssh(line.trim())
        .map(|key| key.key_data().clone())
        .map_err(|e| {
            Failure::input(format!(
                "{}: not an OpenSSH public key: {e}",
                path.display()
            ))
        })
}
