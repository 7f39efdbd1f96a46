//! The command line: what each command takes. Parsing only; the work is in `commands`.

// The doc comments here are clap's `--help` text, shown verbatim: `[ledger]` is a TOML
// section and URLs are examples, not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use kmssh_core::{Algorithm, Curve, KeyFamily, KeySpec};

/// The command line.
#[derive(Parser)]
#[command(
    name = "kmssh",
    version,
    about = "An OpenSSH certificate authority whose private key stays in a KMS"
)]
pub struct Cli {
    /// Show tracing logs on stderr.
    #[arg(long, global = true)]
    pub verbose: bool,
    /// Give up after this long (e.g. `30s`, `2m`): the whole command, retries of a
    /// throttled or unreachable provider included. Exit status 5 when it runs out.
    #[arg(long, global = true, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    #[command(subcommand)]
    pub command: Command,
}

/// A curve for `--create --type ecdsa`.
#[derive(Clone, Copy, ValueEnum)]
pub enum CurveArg {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
}

impl CurveArg {
    /// The curve.
    #[must_use]
    pub fn curve(self) -> Curve {
        match self {
            Self::P256 => Curve::P256,
            Self::P384 => Curve::P384,
            Self::P521 => Curve::P521,
        }
    }
}

/// A key type for `--create`.
#[derive(Clone, Copy, ValueEnum)]
pub enum KeyTypeArg {
    /// ECDSA (`--curve`, default P-256).
    Ecdsa,
    /// RSA (`--bits`, default 3072).
    Rsa,
    /// Ed25519.
    Ed25519,
}

impl KeyTypeArg {
    fn family(self) -> KeyFamily {
        match self {
            Self::Ecdsa => KeyFamily::Ecdsa,
            Self::Rsa => KeyFamily::Rsa,
            Self::Ed25519 => KeyFamily::Ed25519,
        }
    }
}

/// `--create`, `--type`, `--bits` and `--curve`, beside every key URI.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// Create a `local:PATH` key file (mode 0600) if it does not exist; reuse it if it does.
    #[arg(long)]
    pub create: bool,
    /// Key type for `--create`, as `ssh-keygen -t`.
    #[arg(
        long = "type",
        value_enum,
        default_value = "ecdsa",
        requires = "create"
    )]
    pub key_type: KeyTypeArg,
    /// Curve for `--create --type ecdsa`.
    #[arg(long, value_enum, requires = "create")]
    pub curve: Option<CurveArg>,
    /// Size for `--create`, as `ssh-keygen -b`: RSA 2048 to 8192 (default 3072), ECDSA
    /// 256, 384 or 521.
    #[arg(long, requires = "create")]
    pub bits: Option<u32>,
}

impl KeyArgs {
    /// No `--create`: the key must exist.
    #[must_use]
    pub fn existing() -> Self {
        Self {
            create: false,
            key_type: KeyTypeArg::Ecdsa,
            curve: None,
            bits: None,
        }
    }

    /// The kind of key `--create` makes.
    ///
    /// # Errors
    /// A size or curve the type does not take.
    pub fn spec(&self) -> kmssh_core::Result<KeySpec> {
        KeySpec::new(
            self.key_type.family(),
            self.bits,
            self.curve.map(CurveArg::curve),
        )
    }
}

/// Parses `--ca-sig-alg`/`--sig-alg`: `rsa-sha2-512`, `rsa-sha2-256`, `ssh-ed25519`,
/// `ecdsa-sha2-nistp256`… (`ssh-rsa`, SHA-1, is refused by name).
fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    text.parse::<Algorithm>()
        .map_err(|e| e.message().to_owned())
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Issue certificates for public keys, written beside each as `NAME-cert.pub`.
    ///
    /// Example: kmssh sign --ca local:ca_key --create -n alice -I alice@example.com -V +8h id_ed25519.pub
    Sign {
        #[command(flatten)]
        sign: SignArgs,
        /// Issue exactly what a paramiko-cloud CSR protobuf asks for (`-` for stdin);
        /// certificate flags beside it are an error, not a merge.
        #[arg(long, conflicts_with_all = ["host", "principals", "key_id", "serial", "validity", "options", "backdate", "public_keys"])]
        csr: Option<PathBuf>,
        /// With --csr: how the CSR file is encoded (default: binary).
        #[arg(long, value_enum)]
        csr_format: Option<CsrFormat>,
        /// With --csr: write the certificate line here instead of stdout (an existing file
        /// only with --force; never one of the command's inputs).
        #[arg(short = 'o', long)]
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
        /// The type the certificate must have, as sshd requires a user certificate for a
        /// login and ssh a host certificate for a server (default: either).
        #[arg(long = "type", value_enum)]
        cert_type: Option<CertKind>,
        /// Check validity at this moment instead of now: `+1d`, `-2h`,
        /// `YYYYMMDD[HHMM[SS]]` (UTC) or `@SECONDS` since 1970.
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// The certificate file.
        certificate: PathBuf,
    },
    /// Write or update an OpenSSH key revocation list (KRL) for a CA, or check keys and
    /// certificates against one with `--check` (exit 8 if any is revoked).
    ///
    /// Example: kmssh krl --ca local:ca_key --revoke-serial 1000-1099 --revoke-key-id alice@laptop -o revoked.krl
    ///
    /// Example: kmssh krl --check revoked.krl id_ed25519-cert.pub
    Krl(KrlArgs),
    /// Sign a message (hashed locally) and print the signature.
    ///
    /// Example: kmssh sign-message --key local:ca_key --format base64 challenge.bin
    SignMessage {
        /// The key URI.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        key_args: KeyArgs,
        /// Output format: the raw signature `openssl` reads (`der`: DER for ECDSA, the
        /// PKCS#1 v1.5 integer for RSA, 64 bytes for Ed25519), its base64, or an SSH
        /// signature (`ssh-keygen -Y verify`).
        #[arg(long, value_enum, default_value = "base64")]
        format: MessageFormat,
        /// The signature algorithm where the key offers several (`der`/`base64`): for an
        /// RSA key `rs512`, `rs256` or `rs384` (default: the key's first, `rs512` unless
        /// its provider binds it to another hash).
        #[arg(long, value_parser = parse_algorithm)]
        sig_alg: Option<Algorithm>,
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
    /// Run the signing service (gRPC, paramiko-cloud's Signer contract) until SIGTERM or
    /// SIGINT. Prints `kmssh serve: listening on ADDR` on stderr once bound.
    ///
    /// Example: kmssh serve --config /etc/kmssh/kmssh.toml
    Serve {
        /// The service's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Serve plaintext gRPC when the listen address is loopback and there is no [tls].
        #[arg(long)]
        insecure_loopback: bool,
    },
    /// Run an ssh-agent whose keys stay in the KMS: ssh, scp, sftp and git log in with them
    /// through SSH_AUTH_SOCK. Prints `SSH_AUTH_SOCK=…; export SSH_AUTH_SOCK;` (for `eval`),
    /// then runs in the background (or in the foreground with --foreground) until SIGTERM
    /// or SIGINT. Add, remove and lock requests are refused.
    ///
    /// Example: eval "$(kmssh agent --key aws-kms:alias/alice)"; ssh alice@host
    Agent(AgentArgs),
    /// Ask a signing service for a certificate for a public key, written beside it as
    /// `NAME-cert.pub`; or, with `--ca`, print the service key's CA line.
    ///
    /// Example: kmssh request --server https://ca.example.com:50051 --token-file ~/.kmssh-token --key user-ca -n alice id_ed25519.pub
    Request(RequestArgs),
    /// Query the signing service's ledger of issued certificates.
    ///
    /// Example: kmssh ledger list --config /etc/kmssh/kmssh.toml --principal alice
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

/// A wire `provider` for `kmssh request --provider`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    /// AWS (the default on the wire).
    Aws,
    /// Azure.
    Azure,
    /// GCP.
    Gcp,
}

/// `kmssh request`.
#[derive(clap::Args)]
pub struct RequestArgs {
    /// The service: `https://host:port`, or `http://127.0.0.1:port` for a loopback
    /// service run with `--insecure-loopback`.
    #[arg(long)]
    pub server: String,
    /// PEM bundle of the CAs the server's TLS certificate must chain to (default: the
    /// system's roots).
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// The bearer token (visible to other local users in the process list: prefer
    /// --token-file or the KMSSH_TOKEN environment variable).
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the bearer token (opaque, or an OIDC ID token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM client certificate for mTLS.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// The wire `provider` to send (paramiko-cloud services need the key's; kmssh accepts
    /// any with a configured key name). Default: aws.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderArg>,
    /// The service's key to sign with: a configured name (or an alias / KMS key id).
    #[arg(long)]
    pub key: String,
    /// Print the key's CA line (for TrustedUserCAKeys / @cert-authority) instead of
    /// requesting a certificate.
    #[arg(long, conflicts_with_all = ["host", "principals", "key_id", "serial", "validity", "options", "force", "output", "public_key"])]
    pub ca: bool,
    /// Write the service's current KRL for --key to -o (checked: it parses and revokes
    /// only certificates of the service's CA key), for sshd's RevokedKeys.
    #[arg(long, requires = "output", conflicts_with_all = ["host", "principals", "key_id", "serial", "validity", "options", "public_key", "ca"])]
    pub krl: bool,
    /// Revoke, through the service's ledger, the certificate of --key with this serial
    /// (repeatable). The caller's policy must allow revoking (`revoke = true`).
    #[arg(long = "revoke-serial", value_name = "N", conflicts_with_all = ["public_key", "ca", "krl"])]
    pub revoke_serials: Vec<u64>,
    /// Revoke every certificate of --key issued with this key id.
    #[arg(long, value_name = "ID", conflicts_with_all = ["public_key", "ca", "krl"])]
    pub revoke_key_id: Option<String>,
    /// Revoke every certificate of --key naming this principal.
    #[arg(long, value_name = "P", conflicts_with_all = ["public_key", "ca", "krl"])]
    pub revoke_principal: Option<String>,
    /// Why, recorded with the revocations.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Request a host certificate.
    #[arg(long)]
    pub host: bool,
    /// A principal (repeatable, or comma-separated).
    #[arg(short = 'n', long = "principal", value_delimiter = ',')]
    pub principals: Vec<String>,
    /// The key id (default: the service uses the caller's name).
    #[arg(short = 'I', long = "key-id", default_value = "")]
    pub key_id: String,
    /// A serial, for a policy with `serial = "requested"` (default: the service assigns one).
    #[arg(short = 'z', long)]
    pub serial: Option<u64>,
    /// Validity, as ssh-keygen takes it: `+8h`, `-5m:+1d`, `YYYYMMDD[HHMM[SS]]` (default:
    /// the policy's max_validity from now).
    #[arg(short = 'V', long, allow_hyphen_values = true)]
    pub validity: Option<String>,
    /// An option, as ssh-keygen names them (repeatable): clear, force-command=CMD,
    /// source-address=LIST, no-pty, permit-pty, …, extension:NAME[=VALUE],
    /// critical:NAME[=VALUE].
    #[arg(short = 'O', long = "option")]
    pub options: Vec<String>,
    /// Overwrite an existing certificate file.
    #[arg(long)]
    pub force: bool,
    /// Write the certificate here (`-` for stdout) instead of beside the public key.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// The public key file (`-` reads stdin and writes the certificate to stdout).
    #[arg(required_unless_present_any = ["ca", "krl", "revoke_serials", "revoke_key_id", "revoke_principal"])]
    pub public_key: Option<PathBuf>,
}

/// Where `kmssh ledger` reads: a ledger URL, or the service's configuration file.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct LedgerSource {
    /// The ledger: `sqlite:PATH` or `postgres://…`.
    #[arg(long, value_name = "URL")]
    pub ledger: Option<String>,
    /// The service's configuration file: its [ledger].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `kmssh ledger` subcommands.
#[derive(Subcommand)]
pub enum LedgerCommand {
    /// List issued certificates, most recent first: serial, issue time, CA key, type,
    /// key id, principals, caller.
    ///
    /// Example: kmssh ledger list --config kmssh.toml --principal alice --issued-after 2025-01-01T00:00:00Z
    List {
        #[command(flatten)]
        source: LedgerSource,
        /// Only certificates with this key id.
        #[arg(long)]
        key_id: Option<String>,
        /// Only certificates listing this principal.
        #[arg(long)]
        principal: Option<String>,
        /// Only certificates issued at or after this time: unix seconds or RFC 3339.
        #[arg(long, value_parser = parse_time)]
        issued_after: Option<u64>,
        /// Only certificates this caller asked for.
        #[arg(long)]
        caller: Option<String>,
        /// Only certificates signed by the CA key with this configured name.
        #[arg(long)]
        ca_key: Option<String>,
        /// At most this many (the most recent).
        #[arg(long)]
        limit: Option<u64>,
        /// JSON lines, one object per certificate.
        #[arg(long)]
        json: bool,
    },
    /// Show the certificate(s) with a serial: every recorded field and the certificate line.
    ///
    /// Example: kmssh ledger show 42 --config kmssh.toml
    Show {
        /// The serial.
        serial: u64,
        #[command(flatten)]
        source: LedgerSource,
        /// Only the CA with this fingerprint (`SHA256:…`): serials are unique per CA.
        #[arg(long, value_name = "FINGERPRINT")]
        ca: Option<String>,
        /// JSON lines, one object per certificate.
        #[arg(long)]
        json: bool,
    },
}

/// A time: unix seconds, or RFC 3339 (`2025-01-31T12:00:00Z`).
fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let moment = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("`{text}`: expected unix seconds or RFC 3339 (2025-01-31T12:00:00Z): {e}")
        })?;
    u64::try_from(moment.unix_timestamp()).map_err(|_| format!("`{text}` is before 1970"))
}

/// What `kmssh sign` takes besides a CSR.
#[derive(clap::Args)]
pub struct SignArgs {
    /// The CA key URI.
    #[arg(long)]
    pub ca: String,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Issue host certificates.
    #[arg(long)]
    pub host: bool,
    /// A principal (repeatable, or comma-separated).
    #[arg(short = 'n', long = "principal", value_delimiter = ',')]
    pub principals: Vec<String>,
    /// The key id.
    #[arg(short = 'I', long = "key-id", default_value = "")]
    pub key_id: String,
    /// The serial (default: random).
    #[arg(short = 'z', long)]
    pub serial: Option<u64>,
    /// Validity, as ssh-keygen takes it: `+8h`, `-5m:+1d`, `YYYYMMDD[HHMM[SS]]`, `always:forever`.
    #[arg(short = 'V', long, allow_hyphen_values = true)]
    pub validity: Option<String>,
    /// An option, as ssh-keygen names them (repeatable): clear, force-command=CMD,
    /// source-address=LIST, verify-required, no-pty, permit-pty, …,
    /// extension:NAME[=VALUE], critical:NAME[=VALUE].
    #[arg(short = 'O', long = "option")]
    pub options: Vec<String>,
    /// How long before now validity starts when -V gives no start (e.g. 60s, 0).
    #[arg(long)]
    pub backdate: Option<String>,
    /// Allow an empty principal list (a certificate valid for anyone).
    #[arg(long)]
    pub allow_any_principal: bool,
    /// Overwrite existing certificate files (never one of the command's inputs).
    #[arg(long)]
    pub force: bool,
    /// The CA signature algorithm where the key offers several: `rsa-sha2-512` (an RSA
    /// CA's default, as `ssh-keygen -s`) or `rsa-sha2-256`. `ssh-rsa` (SHA-1) is refused.
    #[arg(long, value_parser = parse_algorithm)]
    pub ca_sig_alg: Option<Algorithm>,
    /// Signatures in flight at once when signing many keys (default 32).
    #[arg(long, value_name = "N", default_value_t = kmssh_pki::batch::DEFAULT_BATCH_CONCURRENCY, value_parser = clap::value_parser!(usize))]
    pub concurrency: usize,
    /// At most this many signatures started per second, to stay under a provider quota
    /// (AWS KMS ECC Sign: 1000/s per account and region; Azure Key Vault EC HSM keys: 2000
    /// per 10 s per vault).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rate: Option<u32>,
    /// Public key files (`-` reads stdin and writes the certificate to stdout).
    #[arg(required_unless_present = "csr")]
    pub public_keys: Vec<PathBuf>,
}

/// `kmssh krl`.
#[derive(clap::Args)]
pub struct KrlArgs {
    /// Check the certificates and public keys given against this KRL instead of writing one.
    #[arg(long, value_name = "KRL", conflicts_with_all = ["ca", "update", "output", "from_ledger"])]
    pub check: Option<PathBuf>,
    /// With --check: the certificate and public key files to check.
    #[arg(requires = "check")]
    pub files: Vec<PathBuf>,
    /// The CA whose certificates are revoked by serial and key id: a key URI, or a file
    /// with its OpenSSH public key.
    #[arg(long, required_unless_present = "check")]
    pub ca: Option<String>,
    /// Add to this KRL (its version goes up by one); written back in place unless -o.
    #[arg(long, value_name = "KRL")]
    pub update: Option<PathBuf>,
    /// Revoke a serial or an inclusive range: `N`, `A-B` (serial 0 cannot be revoked by
    /// serial: use --revoke-key-id). Repeatable.
    #[arg(long, value_name = "N|A-B")]
    pub revoke_serial: Vec<String>,
    /// Revoke every certificate with this key id. Repeatable.
    #[arg(long, value_name = "ID")]
    pub revoke_key_id: Vec<String>,
    /// Revoke a public key (and every certificate for it), listing the key. Repeatable.
    #[arg(long, value_name = "KEY.pub")]
    pub revoke_key: Vec<PathBuf>,
    /// Revoke a public key by its SHA-256 fingerprint (smaller). Repeatable.
    #[arg(long, value_name = "KEY.pub")]
    pub revoke_key_hash: Vec<PathBuf>,
    /// The KRL's comment.
    #[arg(long)]
    pub comment: Option<String>,
    /// Write the KRL here.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Replace the -o file if it exists (never one of the inputs).
    #[arg(long)]
    pub force: bool,
    /// Also write an SSHSIG of the KRL, made by the CA key, to KRL.sig (namespace
    /// `file`: `ssh-keygen -Y verify -n file`).
    #[arg(long)]
    pub sign: bool,
    /// Revoke the serials of the certificates the CA issued through the signing service,
    /// as its ledger (`sqlite:PATH`, `postgres://…`) records them, chosen by --key-id,
    /// --principal and --issued-after (at least one; all given must match).
    #[arg(long, value_name = "URL")]
    pub from_ledger: Option<String>,
    /// With --from-ledger: the certificates with this key id.
    #[arg(long, value_name = "ID", requires = "from_ledger")]
    pub key_id: Option<String>,
    /// With --from-ledger: the certificates listing this principal.
    #[arg(long, value_name = "P", requires = "from_ledger")]
    pub principal: Option<String>,
    /// With --from-ledger: the certificates issued at or after this time (unix seconds or
    /// RFC 3339).
    #[arg(long, value_name = "T", requires = "from_ledger", value_parser = parse_time)]
    pub issued_after: Option<u64>,
}

/// `kmssh x509` subcommands.
#[derive(Subcommand)]
pub enum X509Command {
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
        /// Days of validity from now (notBefore is 5 minutes in the past, for lagging clocks).
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// The serial (default: 136 random bits).
        #[arg(long)]
        serial: Option<u64>,
        /// The basicConstraints pathLenConstraint (default: none).
        #[arg(long)]
        path_len: Option<u8>,
        /// The signature algorithm where the key offers several: `rs256` (an RSA key's
        /// default, sha256WithRSAEncryption), `rs384` or `rs512`.
        #[arg(long, value_parser = parse_algorithm)]
        ca_sig_alg: Option<Algorithm>,
        /// Write the PEM here instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Replace the -o file if it exists (never one of the inputs).
        #[arg(long, requires = "output")]
        force: bool,
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
        /// Days of validity from now (at most the CA certificate's remaining life; notBefore
        /// is 5 minutes in the past, for lagging clocks).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// The signature algorithm where the key offers several: `rs256` (an RSA key's
        /// default, sha256WithRSAEncryption), `rs384` or `rs512`.
        #[arg(long, value_parser = parse_algorithm)]
        ca_sig_alg: Option<Algorithm>,
        /// The serial (default: 136 random bits).
        #[arg(long)]
        serial: Option<u64>,
        /// Write the PEM here instead of stdout.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Replace the -o file if it exists (never one of the inputs).
        #[arg(long, requires = "output")]
        force: bool,
    },
}

/// A certificate type for `verify --type`.
#[derive(Clone, Copy, ValueEnum)]
pub enum CertKind {
    /// A user certificate.
    User,
    /// A host certificate.
    Host,
}

/// How a CSR file is encoded.
#[derive(Clone, Copy, ValueEnum)]
pub enum CsrFormat {
    /// Protobuf bytes.
    Binary,
    /// Base64 of the protobuf bytes.
    Base64,
}

/// How `pubkey` prints the key.
#[derive(Clone, Copy, ValueEnum)]
pub enum PubkeyFormat {
    /// An OpenSSH public key line.
    Openssh,
    /// SubjectPublicKeyInfo PEM.
    Pem,
}

/// How `sign-message` writes the signature.
#[derive(Clone, Copy, ValueEnum)]
pub enum MessageFormat {
    /// The form `openssl` reads: DER `ECDSA-Sig-Value`, the RSA PKCS#1 v1.5 integer, or
    /// Ed25519's 64 bytes.
    Der,
    /// Base64 of that.
    Base64,
    /// An armored SSHSIG.
    SshSig,
}

impl Cli {
    /// Parses the command line: clap's checks, then the ones clap cannot express.
    ///
    /// # Errors
    /// The usage error, as clap reports it.
    pub fn parse_checked() -> Result<Self, clap::Error> {
        use clap::Parser as _;
        let cli = Self::try_parse()?;
        cli.check()?;
        Ok(cli)
    }

    /// `-o` and `--csr-format` without `--csr`: clap's `requires` would not say so,
    /// since it drops the requirement of an argument (`--csr`) that conflicts with one
    /// given (the public keys).
    fn check(&self) -> Result<(), clap::Error> {
        // The service runs until a signal; a deadline would kill it mid-request.
        if self.timeout.is_some() && matches!(self.command, Command::Agent(_)) {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "--timeout does not apply to agent: it runs until SIGTERM or SIGINT \
                 (--sign-timeout bounds each signature)",
            ));
        }
        if self.timeout.is_some() && matches!(self.command, Command::Serve { .. }) {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "--timeout does not apply to serve: it runs until SIGTERM or SIGINT \
                 (its [limits] request_timeout bounds each request)",
            ));
        }
        if let Command::Sign {
            csr: None,
            csr_format,
            output,
            ..
        } = &self.command
        {
            let flag = if output.is_some() {
                Some("-o/--output")
            } else if csr_format.is_some() {
                Some("--csr-format")
            } else {
                None
            };
            if let Some(flag) = flag {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    format!(
                        "{flag} applies to --csr only: certificates for public key files are \
                         written beside them"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The subcommand names on a command line (`kmssh x509 leaf`), for a usage error's
/// `--help` hint.
pub fn command_path(args: impl IntoIterator<Item = String>) -> String {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    let mut path = vec!["kmssh".to_owned()];
    for arg in args.into_iter().skip(1) {
        let Some(sub) = command.find_subcommand(&arg).cloned() else {
            continue;
        };
        path.push(arg);
        command = sub;
    }
    path.join(" ")
}

/// `kmssh agent`'s arguments.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// A key to serve, by URI (repeatable).
    #[arg(long = "key", value_name = "URI", required = true)]
    pub keys: Vec<String>,
    /// An OpenSSH certificate of one of the keys, listed with it (repeatable).
    #[arg(long = "certificate", value_name = "FILE")]
    pub certificates: Vec<PathBuf>,
    /// Listen here (refused if anything is there) instead of a new private directory.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Stay in the foreground (logs on stderr).
    #[arg(long)]
    pub foreground: bool,
    /// A command that must approve each signature (exit status 0), run with /bin/sh -c;
    /// it sees KMSSH_AGENT_KEY, KMSSH_AGENT_COMMENT, KMSSH_AGENT_FINGERPRINT and
    /// KMSSH_AGENT_ALGORITHM.
    #[arg(long, value_name = "CMD")]
    pub confirm: Option<String>,
    /// The longest a signature may take before the agent answers failure (default 30s;
    /// keep it under sshd's LoginGraceTime).
    #[arg(long, value_parser = parse_timeout, default_value = "30s")]
    pub sign_timeout: Duration,
    /// A kmssh CA key that certifies each served key with a short-lived user certificate,
    /// renewed at two thirds of its life.
    #[arg(long, value_name = "URI", requires = "principals")]
    pub ca: Option<String>,
    /// A principal of those certificates (repeatable, or comma-separated).
    #[arg(long = "principal", value_delimiter = ',', requires = "ca")]
    pub principals: Vec<String>,
    /// How long each of those certificates is valid (e.g. 1h, 8h; at least 1m).
    #[arg(long, value_parser = parse_timeout, default_value = "1h", requires = "ca")]
    pub validity: Duration,
}

/// `--timeout`: a duration as ssh-keygen writes them, at least one second.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match kmssh_pki::ssh_keygen::parse_duration(text).map_err(|e| e.to_string())? {
        0 => Err("the timeout must be at least 1s".to_owned()),
        seconds => Ok(Duration::from_secs(seconds)),
    }
}
