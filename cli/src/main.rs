//! `kmssh`: an OpenSSH certificate authority whose key stays in a KMS (or a local file).
//!
//! Exit status: 0 success, 2 usage, 3 bad input, 4 key or permission, 5 provider
//! unavailable (retry later), 6 verification failed, 1 anything else.

#![forbid(unsafe_code)]

mod options;
mod validity;
mod x509;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
#[cfg(feature = "local")]
use kmssh_backend_local as _;
use kmssh_core::{ErrorKind, KmsKey};
use kmssh_pki::{
    Certificate, CertificateParameters, CertificateType, VerifyOptions, cert_path_for, issue,
    parse_subject_key, pubkey_string, ssh_public_key, unix_now,
};

/// A failure, with the class that picks the exit status.
struct Failure {
    class: Class,
    message: String,
}

#[derive(Clone, Copy)]
enum Class {
    Input,
    Key,
    Unavailable,
    Verification,
    Other,
}

impl Class {
    fn exit_code(self) -> u8 {
        match self {
            Self::Input => 3,
            Self::Key => 4,
            Self::Unavailable => 5,
            Self::Verification => 6,
            Self::Other => 1,
        }
    }

    fn of(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidInput | ErrorKind::InvalidUri => Self::Input,
            ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::InvalidKey
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::BackendNotCompiled
            | ErrorKind::Config => Self::Key,
            ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Timeout => Self::Unavailable,
            ErrorKind::BadSignature => Self::Verification,
            _ => Self::Other,
        }
    }
}

fn input(message: impl Into<String>) -> Failure {
    Failure {
        class: Class::Input,
        message: message.into(),
    }
}

impl Failure {
    /// The same failure, its message prefixed with what it is about (a file name).
    fn about(self, what: impl std::fmt::Display) -> Self {
        Self {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
}

impl From<kmssh_core::Error> for Failure {
    fn from(e: kmssh_core::Error) -> Self {
        Self {
            class: Class::of(e.kind()),
            message: e.to_string(),
        }
    }
}

impl From<kmssh_pki::Error> for Failure {
    fn from(e: kmssh_pki::Error) -> Self {
        let class = match &e {
            kmssh_pki::Error::Verify(_) => Class::Verification,
            other => Class::of(other.kind()),
        };
        Self {
            class,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_local_engine;

    #[test]
    fn local_keys_get_the_engine_that_suits_the_batch() {
        assert_eq!(
            with_local_engine("local:ca", 1),
            "local:ca?engine=rustcrypto"
        );
        assert_eq!(
            with_local_engine("local:ca", 1000),
            "local:ca?engine=aws-lc"
        );
        assert_eq!(
            with_local_engine("local:ephemeral?curve=p384", 1),
            "local:ephemeral?curve=p384&engine=rustcrypto"
        );
        assert_eq!(
            with_local_engine("local:ca?engine=aws-lc", 1),
            "local:ca?engine=aws-lc"
        );
        assert_eq!(with_local_engine("aws-kms:alias/ca", 1), "aws-kms:alias/ca");
    }
}

#[derive(Parser)]
#[command(
    name = "kmssh",
    version,
    about = "An OpenSSH certificate authority whose private key stays in a KMS"
)]
struct Cli {
    /// Show tracing logs on stderr.
    #[arg(long, global = true)]
    verbose: bool,
    /// Give up after this long (e.g. `30s`, `2m`): the whole command, retries of a
    /// throttled or unreachable provider included. Exit status 5 when it runs out.
    #[arg(long, global = true, value_parser = parse_timeout)]
    timeout: Option<Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum CurveArg {
    P256,
    P384,
    P521,
}

#[derive(clap::Args)]
struct KeyArgs {
    /// Create a `local:PATH` key file (mode 0600) if it does not exist; reuse it if it does.
    #[arg(long)]
    create: bool,
    /// Curve for `--create`.
    #[arg(long, value_enum, default_value = "p256")]
    curve: CurveArg,
}

#[derive(Subcommand)]
enum Command {
    /// Issue certificates for public keys, written beside each as `NAME-cert.pub`.
    ///
    /// Example: kmssh sign --ca local:ca_key --create -n alice -I alice@example.com -V +8h id_ed25519.pub
    Sign {
        /// The CA key URI.
        #[arg(long)]
        ca: String,
        #[command(flatten)]
        key: KeyArgs,
        /// Issue host certificates.
        #[arg(long)]
        host: bool,
        /// A principal (repeatable, or comma-separated).
        #[arg(short = 'n', long = "principal", value_delimiter = ',')]
        principals: Vec<String>,
        /// The key id.
        #[arg(short = 'I', long = "key-id", default_value = "")]
        key_id: String,
        /// The serial (default: random).
        #[arg(short = 'z', long)]
        serial: Option<u64>,
        /// Validity, as ssh-keygen takes it: `+8h`, `-5m:+1d`, `YYYYMMDD[HHMM[SS]]`, `always:forever`.
        #[arg(short = 'V', long, allow_hyphen_values = true)]
        validity: Option<String>,
        /// An option, as ssh-keygen names them (repeatable): clear, force-command=CMD,
        /// source-address=LIST, verify-required, no-pty, permit-pty, …,
        /// extension:NAME[=VALUE], critical:NAME[=VALUE].
        #[arg(short = 'O', long = "option")]
        options: Vec<String>,
        /// How long before now validity starts when -V gives no start (e.g. 60s, 0).
        #[arg(long)]
        backdate: Option<String>,
        /// Allow an empty principal list (a certificate valid for anyone).
        #[arg(long)]
        allow_any_principal: bool,
        /// Overwrite existing certificate files.
        #[arg(long)]
        force: bool,
        /// Public key files (`-` reads stdin and writes the certificate to stdout).
        #[arg(required_unless_present = "csr")]
        public_keys: Vec<PathBuf>,
        /// Issue exactly what a paramiko-cloud CSR protobuf asks for (`-` for stdin);
        /// certificate flags beside it are an error, not a merge.
        #[arg(long, conflicts_with_all = ["host", "principals", "key_id", "serial", "validity", "options", "backdate", "force", "public_keys"])]
        csr: Option<PathBuf>,
        /// How the CSR file is encoded.
        #[arg(long, value_enum, default_value = "binary", requires = "csr")]
        csr_format: CsrFormat,
        /// With --csr: write the certificate line here instead of stdout.
        #[arg(short = 'o', long, requires = "csr")]
        output: Option<PathBuf>,
    },
    /// Print the CA's public key: an OpenSSH line for TrustedUserCAKeys / @cert-authority,
    /// or SubjectPublicKeyInfo PEM.
    ///
    /// Example: kmssh pubkey --ca aws-kms:alias/ssh-ca --comment "prod user CA"
    Pubkey {
        /// The CA key URI.
        #[arg(long)]
        ca: String,
        #[command(flatten)]
        key: KeyArgs,
        /// A comment for the OpenSSH line.
        #[arg(long, default_value = "")]
        comment: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "openssh")]
        format: PubkeyFormat,
    },
    /// Show a certificate, like `ssh-keygen -L`.
    ///
    /// Example: kmssh inspect id_ed25519-cert.pub --json
    Inspect {
        /// The certificate file.
        certificate: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Verify a certificate against a CA (a key URI or a CA .pub file).
    ///
    /// Example: kmssh verify --ca ca.pub --principal alice id_ed25519-cert.pub
    Verify {
        /// CA key URI, or a file with the CA's OpenSSH public key.
        #[arg(long)]
        ca: String,
        /// A principal the certificate must list.
        #[arg(long)]
        principal: Option<String>,
        /// Check validity at this moment instead of now: `+1d`, `-2h`,
        /// `YYYYMMDD[HHMM[SS]]` (UTC) or `@SECONDS` since 1970.
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// The certificate file.
        certificate: PathBuf,
    },
    /// Sign a message (hashed locally) and print the signature.
    ///
    /// Example: kmssh sign-message --key local:ca_key --format base64 challenge.bin
    SignMessage {
        /// The key URI.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        key_args: KeyArgs,
        /// Output format: DER, base64 DER (`openssl dgst -verify`), or an SSH signature
        /// (`ssh-keygen -Y verify`).
        #[arg(long, value_enum, default_value = "base64")]
        format: MessageFormat,
        /// The SSH signature namespace (with `--format ssh-sig`).
        #[arg(long, default_value = "file")]
        namespace: String,
        /// The message file, or `-` for stdin.
        message: PathBuf,
    },
    /// X.509 certificates signed by the key: a self-signed CA, or a leaf under it.
    ///
    /// Example: kmssh x509 ca --ca gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1 --subject "CN=Example CA" -o ca.pem
    X509 {
        #[command(subcommand)]
        command: X509Command,
    },
    /// List the compiled-in backends and their URI schemes.
    ///
    /// Example: kmssh backends
    Backends,
}

#[derive(Subcommand)]
enum X509Command {
    /// Issue a self-signed CA certificate for the key (basicConstraints cA, keyCertSign,
    /// cRLSign), as PEM.
    ///
    /// Example: kmssh x509 ca --ca local:ca_key --create --subject "CN=Example CA,O=Example" --days 3650 -o ca.pem
    Ca {
        /// The CA key URI.
        #[arg(long)]
        ca: String,
        #[command(flatten)]
        key: KeyArgs,
        /// The CA's name, RFC 4514 (`CN=Example CA,O=Example`).
        #[arg(long)]
        subject: String,
        /// Days of validity from now.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// The serial (default: 136 random bits).
        #[arg(long)]
        serial: Option<u64>,
        /// The basicConstraints pathLenConstraint (default: none).
        #[arg(long)]
        path_len: Option<u8>,
        /// Write the PEM here instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Sign a leaf certificate for a PKCS#10 request (its signature checked) or a public
    /// key, issued under the CA certificate of the same key, as PEM. A request's subject is
    /// kept; its requested extensions are not copied (the CA decides, as `openssl x509 -req`).
    ///
    /// Example: kmssh x509 leaf --ca local:ca_key --ca-cert ca.pem --csr server.csr --dns-name www.example.com -o server.pem
    Leaf {
        /// The CA key URI.
        #[arg(long)]
        ca: String,
        #[command(flatten)]
        key: KeyArgs,
        /// The CA certificate (PEM or DER) made for this key by `kmssh x509 ca`.
        #[arg(long)]
        ca_cert: PathBuf,
        /// A PKCS#10 certificate request (PEM or DER, `-` for stdin).
        #[arg(
            long,
            required_unless_present = "public_key",
            conflicts_with = "public_key"
        )]
        csr: Option<PathBuf>,
        /// A SubjectPublicKeyInfo (PEM or DER, `-` for stdin).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The subject name, RFC 4514; required with --public-key, replaces a request's.
        #[arg(long)]
        subject: Option<String>,
        /// A DNS name for subjectAltName (repeatable).
        #[arg(long = "dns-name")]
        dns_names: Vec<String>,
        /// An IP address for subjectAltName (repeatable).
        #[arg(long = "ip")]
        ip_addresses: Vec<std::net::IpAddr>,
        /// Add the serverAuth extended key usage.
        #[arg(long)]
        server_auth: bool,
        /// Add the clientAuth extended key usage.
        #[arg(long)]
        client_auth: bool,
        /// Days of validity from now (at most the CA certificate's remaining life).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// The serial (default: 136 random bits).
        #[arg(long)]
        serial: Option<u64>,
        /// Write the PEM here instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CsrFormat {
    Binary,
    Base64,
}

#[derive(Clone, Copy, ValueEnum)]
enum PubkeyFormat {
    Openssh,
    Pem,
}

#[derive(Clone, Copy, ValueEnum)]
enum MessageFormat {
    Der,
    Base64,
    SshSig,
}

fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buffer)
            .map_err(|e| input(format!("stdin: {e}")))?;
        Ok(buffer)
    } else {
        std::fs::read(path).map_err(|e| input(format!("{}: {e}", path.display())))
    }
}

/// Below this many signatures a local key signs with RustCrypto, above it with AWS-LC.
/// AWS-LC's first random bytes seed its CPU-jitter entropy pool, about 45 ms of CPU once
/// per process (measured with `perf`: most of a one-shot `kmssh sign`); each P-256
/// signature then costs ~72 µs less than RustCrypto's, so the pool pays for itself near
/// 600 certificates on P-256 (~300 on P-384, ~1,100 on P-521).
const AWS_LC_FROM_SIGNATURES: usize = 512;

/// A `local:` URI without an `engine` parameter gets the engine that is faster for
/// `signatures` signatures; any other URI is left as it is.
fn with_local_engine(uri: &str, signatures: usize) -> String {
    let Some(rest) = uri.strip_prefix("local:") else {
        return uri.to_owned();
    };
    let query = rest.split_once('?').map(|(_, q)| q);
    if query.is_some_and(|q| q.split('&').any(|p| p.starts_with("engine="))) {
        return uri.to_owned();
    }
    let engine = if signatures >= AWS_LC_FROM_SIGNATURES {
        "aws-lc"
    } else {
        "rustcrypto"
    };
    let separator = if query.is_some() { '&' } else { '?' };
    format!("{uri}{separator}engine={engine}")
}

/// Opens a key URI that will make `signatures` signatures; with `--create`, makes a
/// missing `local:` key file first.
async fn open_key(uri: &str, key: &KeyArgs, signatures: usize) -> Result<Arc<dyn KmsKey>, Failure> {
    if key.create {
        let path = uri
            .strip_prefix("local:")
            .filter(|p| !p.starts_with("ephemeral"))
            .ok_or_else(|| input("--create applies to local:PATH keys only"))?;
        let path = Path::new(path.split('?').next().unwrap_or(path));
        if !path.exists() {
            options::create_local_key(path, key.curve)?;
        }
    }
    Ok(kmssh_core::open(&with_local_engine(uri, signatures)).await?)
}

/// `sign-message --format ssh-sig`: an `SSHSIG` (PROTOCOL.sshsig) over the message's
/// SHA-512, signed through the key, as `ssh-keygen -Y sign` writes it.
async fn sign_sshsig(key: &dyn KmsKey, namespace: &str, message: &[u8]) -> Result<(), Failure> {
    use kmssh_pki::ssh_key::{HashAlg, LineEnding, SshSig};
    let encoding = |e: kmssh_pki::ssh_key::Error| input(format!("SSH signature: {e}"));
    let signed_data = SshSig::signed_data(namespace, HashAlg::Sha512, message).map_err(encoding)?;
    let signature = key.sign_message(&signed_data).await?;
    let sshsig = SshSig::new(
        ssh_public_key(key.public_key()),
        namespace,
        HashAlg::Sha512,
        kmssh_pki::ssh_signature(&signature)?,
    )
    .map_err(encoding)?;
    print!("{}", sshsig.to_pem(LineEnding::LF).map_err(encoding)?);
    Ok(())
}

/// `sign --csr`: every field of the request honoured, as paramiko-cloud does.
async fn sign_csr(
    ca: &str,
    key: &KeyArgs,
    path: &Path,
    format: CsrFormat,
    output: Option<&Path>,
    allow_any_principal: bool,
) -> Result<(), Failure> {
    let raw = read_input(path)?;
    let bytes = match format {
        CsrFormat::Binary => raw,
        CsrFormat::Base64 => {
            use base64ct::Encoding as _;
            let text = String::from_utf8(raw).map_err(|_| input("the CSR is not base64 text"))?;
            let compact: String = text.split_whitespace().collect();
            base64ct::Base64::decode_vec(&compact)
                .map_err(|_| input("the CSR is not valid base64"))?
        }
    };
    let request = kmssh_pki::CertificateSigningRequest::from_proto(&bytes)?;
    let params = request.to_parameters(allow_any_principal)?;
    let ca_key = open_key(ca, key, 1).await?;
    let cert = issue(ca_key.as_ref(), &request.public_key, &params).await?;
    write_output(output, &format!("{}\n", cert.cert_string(&request.key_id)))
}

/// Writes text to a file, or to stdout without one.
fn write_output(output: Option<&Path>, text: &str) -> Result<(), Failure> {
    match output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| input(format!("{}: {e}", path.display())))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

async fn run_x509(command: X509Command) -> Result<(), Failure> {
    match command {
        X509Command::Ca {
            ca,
            key,
            subject,
            days,
            serial,
            path_len,
            output,
        } => {
            let key = open_key(&ca, &key, 1).await?;
            let request = x509::CaRequest {
                subject: &subject,
                days,
                serial,
                path_len,
            };
            write_output(output.as_deref(), &x509::issue_ca(&key, &request).await?)
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
            output,
        } => {
            let ca_certificate = read_input(&ca_cert)?;
            let csr = csr.as_deref().map(read_input).transpose()?;
            let public_key = public_key.as_deref().map(read_input).transpose()?;
            let request = x509::LeafRequest {
                ca_certificate: &ca_certificate,
                csr: csr.as_deref(),
                public_key: public_key.as_deref(),
                subject: subject.as_deref(),
                dns_names: &dns_names,
                ip_addresses: &ip_addresses,
                server_auth,
                client_auth,
                days,
                serial,
            };
            let key = open_key(&ca, &key, 1).await?;
            write_output(output.as_deref(), &x509::issue_leaf(&key, &request).await?)
        }
    }
}

/// How many certificates are signed at once: enough to hide a KMS round trip, few
/// enough to stay inside provider request quotas.
const SIGN_CONCURRENCY: usize = 32;

/// One public key to certify: its key, its comment, and where the certificate goes
/// (`None`: stdout).
type SignJob = (kmssh_pki::ssh_key::public::KeyData, String, Option<PathBuf>);

/// Signs every job concurrently (bounded), with a progress bar when stderr is a
/// terminal. Every certificate that was issued is written even when others failed; the
/// first failure, with the count of the rest, is the error.
async fn sign_all(
    ca_key: Arc<dyn KmsKey>,
    params: &CertificateParameters,
    jobs: Vec<SignJob>,
) -> Result<(), Failure> {
    use std::io::IsTerminal as _;
    let progress = if jobs.len() > 1 && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} certificates, {per_sec}, {eta} left",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(SIGN_CONCURRENCY));
    for (index, (subject, comment, target)) in jobs.into_iter().enumerate() {
        let (ca_key, params, limit) = (ca_key.clone(), params.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let cert = issue(ca_key.as_ref(), &subject, &params).await;
            (index, cert.map(|c| c.cert_string(&comment)), target)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.push(done.map_err(|e| Failure {
            class: Class::Other,
            message: e.to_string(),
        })?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    results.sort_by_key(|(index, _, _)| *index);
    let mut failures = Vec::new();
    for (_, result, target) in results {
        let written = match result {
            Err(e) => Err(Failure::from(e).about(
                target
                    .as_deref()
                    .map_or_else(|| "stdin".to_owned(), |t| t.display().to_string()),
            )),
            Ok(line) => write_output(target.as_deref(), &format!("{line}\n")),
        };
        if let Err(failure) = written {
            failures.push(failure);
        }
    }
    let more = failures.len().saturating_sub(1);
    match failures.into_iter().next() {
        None => Ok(()),
        Some(first) if more == 0 => Err(first),
        Some(first) => Err(Failure {
            message: format!("{} (and {more} more failed)", first.message),
            ..first
        }),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::X509 { command } => run_x509(command).await,
        Command::Backends => {
            for backend in kmssh_core::backends() {
                println!(
                    "{:<10} {}",
                    format!("{}:", backend.scheme),
                    backend.description
                );
            }
            Ok(())
        }
        Command::Pubkey {
            ca,
            key,
            comment,
            format,
        } => {
            let key = open_key(&ca, &key, 1).await?;
            match format {
                PubkeyFormat::Openssh => println!("{}", pubkey_string(key.public_key(), &comment)),
                PubkeyFormat::Pem => print!("{}", key.public_key().to_pem()?),
            }
            Ok(())
        }
        Command::Sign {
            ca,
            key,
            host,
            principals,
            key_id,
            serial,
            validity,
            options,
            backdate,
            allow_any_principal,
            force,
            public_keys,
            csr,
            csr_format,
            output,
        } => {
            if let Some(csr) = csr {
                return sign_csr(
                    &ca,
                    &key,
                    &csr,
                    csr_format,
                    output.as_deref(),
                    allow_any_principal,
                )
                .await;
            }
            let now = unix_now();
            let mut params = CertificateParameters::new(if host {
                CertificateType::Host
            } else {
                CertificateType::User
            });
            params.principals(principals)?.key_id(key_id)?;
            if let Some(serial) = serial {
                params.serial(serial)?;
            }
            if let Some(text) = validity {
                let window = validity::parse_validity(&text, now).map_err(input)?;
                if let Some(after) = window.after {
                    params.valid_after(after)?;
                }
                if let Some(before) = window.before {
                    params.valid_before(before)?;
                }
            }
            if let Some(text) = backdate {
                params.backdate(Duration::from_secs(
                    validity::parse_duration(&text).map_err(input)?,
                ))?;
            }
            options::apply(&mut params, &options, host)?;
            if allow_any_principal {
                params.allow_any_principal();
            }
            // Check everything before touching the key.
            params.resolve(now)?;
            let mut jobs = Vec::new();
            for path in &public_keys {
                let text = String::from_utf8(read_input(path)?)
                    .map_err(|_| input(format!("{}: not text", path.display())))?;
                let subject =
                    parse_subject_key(&text).map_err(|e| Failure::from(e).about(path.display()))?;
                let comment = text.split_whitespace().nth(2).unwrap_or("").to_owned();
                let target = (path != Path::new("-")).then(|| cert_path_for(path));
                if let Some(target) = &target
                    && target.exists()
                    && !force
                {
                    return Err(input(format!(
                        "{} exists: use --force to overwrite",
                        target.display()
                    )));
                }
                jobs.push((subject, comment, target));
            }
            let ca_key = open_key(&ca, &key, jobs.len()).await?;
            sign_all(ca_key, &params, jobs).await
        }
        Command::Inspect { certificate, json } => {
            let text =
                String::from_utf8(read_input(&certificate)?).map_err(|_| input("not text"))?;
            let cert = Certificate::from_openssh(&text)?;
            options::print_certificate(&certificate, &cert, json);
            Ok(())
        }
        Command::Verify {
            ca,
            principal,
            at,
            certificate,
        } => {
            let text =
                String::from_utf8(read_input(&certificate)?).map_err(|_| input("not text"))?;
            let cert = Certificate::from_openssh(&text)?;
            let moment = at
                .map(|text| validity::parse_moment(&text, unix_now()))
                .transpose()
                .map_err(input)?;
            let ca_key = if Path::new(&ca).is_file() {
                let line = std::fs::read_to_string(&ca).map_err(|e| input(format!("{ca}: {e}")))?;
                kmssh_pki::ssh_key::PublicKey::from_openssh(line.trim())
                    .map_err(|e| input(format!("{ca}: not an OpenSSH public key: {e}")))?
                    .key_data()
                    .clone()
            } else {
                ssh_public_key(kmssh_core::open(&ca).await?.public_key())
            };
            cert.verify(
                &ca_key,
                &VerifyOptions {
                    at: moment,
                    principal,
                    cert_type: None,
                },
            )?;
            println!("{}: valid", certificate.display());
            Ok(())
        }
        Command::SignMessage {
            key,
            key_args,
            format,
            namespace,
            message,
        } => {
            let message = read_input(&message)?;
            let key = open_key(&key, &key_args, 1).await?;
            match format {
                MessageFormat::SshSig => sign_sshsig(key.as_ref(), &namespace, &message).await,
                MessageFormat::Der | MessageFormat::Base64 => {
                    let der = key.sign_message(&message).await?.to_der();
                    if let MessageFormat::Der = format {
                        std::io::stdout()
                            .write_all(&der)
                            .map_err(|e| input(e.to_string()))?;
                    } else {
                        use base64ct::Encoding as _;
                        println!("{}", base64ct::Base64::encode_string(&der));
                    }
                    Ok(())
                }
            }
        }
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match validity::parse_duration(text)? {
        0 => Err("the timeout must be at least 1s".to_owned()),
        seconds => Ok(Duration::from_secs(seconds)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kmssh: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let timeout = cli.timeout;
    let outcome = runtime.block_on(async move {
        match timeout {
            None => run(cli).await,
            Some(limit) => tokio::time::timeout(limit, run(cli))
                .await
                .unwrap_or_else(|_| {
                    Err(Failure {
                        class: Class::Unavailable,
                        message: format!(
                            "gave up after --timeout {}s: the key's provider did not finish \
                             in time (--verbose shows its retries)",
                            limit.as_secs()
                        ),
                    })
                }),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kmssh: {}", failure.message);
            ExitCode::from(failure.class.exit_code())
        }
    }
}
