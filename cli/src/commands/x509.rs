//! `kmssh x509 ca|leaf`: X.509 certificates signed through the key, as PEM.

use kmssh_pki::x509::{
    CaRequest, LeafKey, LeafRequest, certificate_to_pem, issue_ca, issue_leaf, parse_certificate,
    parse_certification_request, parse_public_key,
};

use crate::args::X509Command;
use crate::exit::Failure;
use crate::io::{
    exists_without_force, local_key_file, open_key, read_input, refuse_output_over_inputs,
    write_output,
};

/// Issues a self-signed CA certificate, or a leaf under one.
pub async fn run(command: X509Command) -> Result<(), Failure> {
    let (certificate, output, force) = match command {
        X509Command::Ca {
            ca,
            key,
            subject,
            days,
            serial,
            path_len,
            ca_sig_alg,
            output,
            force,
        } => {
            if let Some(output) = &output {
                let ca_file = local_key_file(&ca);
                refuse_output_over_inputs(
                    output,
                    &ca_file.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
                )?;
                refuse_existing(output, force)?;
            }
            let mut request = CaRequest::new(subject);
            request.days = days;
            request.serial = serial;
            request.path_len = path_len;
            request.signature_algorithm = ca_sig_alg;
            let key = open_key(&ca, &key, 1).await?;
            (issue_ca(key.as_ref(), &request).await?, output, force)
        }
        X509Command::Leaf {
            ca,
            key,
            ca_cert,
            csr,
            public_key,
            subject,
            dns_names,
            ip_addresses,
            server_auth,
            client_auth,
            days,
            serial,
            ca_sig_alg,
            output,
            force,
        } => {
            if let Some(output) = &output {
                let ca_file = local_key_file(&ca);
                let mut inputs = vec![ca_cert.as_path()];
                inputs.extend(ca_file.as_deref());
                inputs.extend(csr.as_deref());
                inputs.extend(public_key.as_deref());
                refuse_output_over_inputs(output, &inputs)?;
                refuse_existing(output, force)?;
            }
            let ca_certificate = parse_certificate(&read_input(&ca_cert)?)
                .map_err(|e| Failure::from(e).about(ca_cert.display()))?;
            let leaf_key = match (csr, public_key) {
                (Some(path), None) => LeafKey::Request(
                    parse_certification_request(&read_input(&path)?)
                        .map_err(|e| Failure::from(e).about(path.display()))?,
                ),
                (None, Some(path)) => LeafKey::PublicKey(
                    parse_public_key(&read_input(&path)?)
                        .map_err(|e| Failure::from(e).about(path.display()))?,
                ),
                _ => return Err(Failure::input("give exactly one of --csr and --public-key")),
            };
            let mut request = LeafRequest::new(ca_certificate, leaf_key);
            request.subject = subject;
            request.dns_names = dns_names;
            request.ip_addresses = ip_addresses;
            request.server_auth = server_auth;
            request.client_auth = client_auth;
            request.days = days;
            request.serial = serial;
            request.signature_algorithm = ca_sig_alg;
            let key = open_key(&ca, &key, 1).await?;
            (issue_leaf(key.as_ref(), &request).await?, output, force)
        }
    };
    write_output(
        output.as_deref(),
        certificate_to_pem(&certificate)?.as_bytes(),
        force,
    )
}

/// Refuses an existing output before anything is signed, unless `--force`.
fn refuse_existing(output: &std::path::Path, force: bool) -> Result<(), Failure> {
    if !force && output.symlink_metadata().is_ok() {
        return Err(exists_without_force(output));
    }
    Ok(())
}
