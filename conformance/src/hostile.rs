//! Hostile certificates and requests, generated on the spot: certificates a CA key signs
//! over bytes kmssh itself would never write (or that are altered after signing), each
//! with what OpenSSH does with it, and mutated certificate signing requests. The suite in
//! `tests/hostile_inputs.rs` judges kmssh's verification against `ssh-keygen -L` and a real
//! `sshd` with them; nothing is checked in but this generator.

use kmssh_core::KmsKey;
use kmssh_pki::ssh_key::encoding::Encode;
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{CertificateSigningRequest, ssh_public_key, ssh_signature};

/// What OpenSSH does with a certificate presented for a user login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// sshd accepts it.
    Accept,
    /// sshd refuses it.
    Refuse,
}

/// One generated certificate, and OpenSSH's verdict on it.
#[derive(Clone, Debug)]
pub struct HostileCertificate {
    /// What is special about it.
    pub name: &'static str,
    /// The certificate blob.
    pub blob: Vec<u8>,
    /// What sshd does with it (from OpenSSH's `auth-options.c` and `sshkey.c`; the suite
    /// checks it against a running sshd).
    pub openssh: Verdict,
    /// Where kmssh deliberately refuses what sshd accepts: the reason (documented in
    /// `docs/SECURITY.md`). kmssh is never looser than sshd.
    pub kmssh_stricter: Option<&'static str>,
}

/// Appends an SSH `string`.
fn put_string(bytes: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// An SSH `string` on its own.
fn string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    put_string(bytes, &mut out);
    out
}

/// The fields of a user or host certificate, raw: every length and every option's data
/// is written exactly as given, so a test can write what kmssh never would.
#[derive(Clone, Debug)]
pub struct RawCertificate {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, …: the subject key's type.
    pub key_type: String,
    /// The nonce.
    pub nonce: Vec<u8>,
    /// The subject key's fields after its type string, as they appear in its blob.
    pub key_fields: Vec<u8>,
    /// The serial.
    pub serial: u64,
    /// 1 user, 2 host.
    pub cert_type: u32,
    /// The key id bytes.
    pub key_id: Vec<u8>,
    /// The principals' bytes.
    pub principals: Vec<Vec<u8>>,
    /// Start of validity.
    pub valid_after: u64,
    /// End of validity.
    pub valid_before: u64,
    /// Critical options as (name, data), `data` written as the option's string verbatim.
    pub critical_options: Vec<(Vec<u8>, Vec<u8>)>,
    /// Extensions as (name, data), likewise.
    pub extensions: Vec<(Vec<u8>, Vec<u8>)>,
}

/// An option's data for a flag: empty.
#[must_use]
pub fn flag() -> Vec<u8> {
    Vec::new()
}

/// An option's data for a value: the value as a string inside the data string.
#[must_use]
pub fn value(text: &str) -> Vec<u8> {
    string(text.as_bytes())
}

fn options_map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, data) in entries {
        put_string(name, &mut body);
        put_string(data, &mut body);
    }
    string(&body)
}

impl RawCertificate {
    /// A user certificate for `subject` and `principal`, valid an hour from a minute
    /// before `now`, with ssh-keygen's five permissions: what kmssh issues by default.
    ///
    /// # Panics
    /// If the subject key cannot be encoded.
    #[must_use]
    pub fn user(subject: &KeyData, principal: &str, now: u64) -> Self {
        let blob = subject.encode_vec().expect("the subject key encodes");
        let type_len = u32::from_be_bytes(blob[..4].try_into().expect("4 bytes")) as usize;
        Self {
            key_type: subject.algorithm().as_str().to_owned(),
            nonce: vec![7; 32],
            key_fields: blob[4 + type_len..].to_vec(),
            serial: 42,
            cert_type: 1,
            key_id: b"hostile".to_vec(),
            principals: vec![principal.as_bytes().to_vec()],
            valid_after: now - 60,
            valid_before: now + 3600,
            critical_options: Vec::new(),
            extensions: [
                "permit-X11-forwarding",
                "permit-agent-forwarding",
                "permit-port-forwarding",
                "permit-pty",
                "permit-user-rc",
            ]
            .iter()
            .map(|n| (n.as_bytes().to_vec(), flag()))
            .collect(),
        }
    }

    /// The bytes a CA signs (PROTOCOL.certkeys), naming `ca` as the signature key.
    ///
    /// # Panics
    /// If the CA key cannot be encoded.
    #[must_use]
    pub fn to_be_signed(&self, ca: &KeyData) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(
            format!("{}-cert-v01@openssh.com", self.key_type).as_bytes(),
            &mut out,
        );
        put_string(&self.nonce, &mut out);
        out.extend_from_slice(&self.key_fields);
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.cert_type.to_be_bytes());
        put_string(&self.key_id, &mut out);
        let mut principals = Vec::new();
        for p in &self.principals {
            put_string(p, &mut principals);
        }
        put_string(&principals, &mut out);
        out.extend_from_slice(&self.valid_after.to_be_bytes());
        out.extend_from_slice(&self.valid_before.to_be_bytes());
        out.extend_from_slice(&options_map(&self.critical_options));
        out.extend_from_slice(&options_map(&self.extensions));
        put_string(&[], &mut out); // reserved
        put_string(&ca.encode_vec().expect("the CA key encodes"), &mut out);
        out
    }

    /// The certificate signed by `ca` over exactly [`RawCertificate::to_be_signed`].
    ///
    /// # Panics
    /// If the key fails to sign.
    pub async fn sign(&self, ca: &dyn KmsKey) -> Vec<u8> {
        let mut blob = self.to_be_signed(&ssh_public_key(ca.public_key()));
        let signature = ca.sign_message(&blob).await.expect("the CA signs");
        ssh_signature(&signature)
            .expect("SSH form")
            .encode_prefixed(&mut blob)
            .expect("encodes");
        blob
    }
}

/// The generated certificates for `subject` and `principal`, signed by `ca` (or, for
/// one case, by `other_ca` while naming `ca`), around `now`.
pub async fn certificates(
    ca: &dyn KmsKey,
    other_ca: &dyn KmsKey,
    subject: &KeyData,
    principal: &str,
    now: u64,
) -> Vec<HostileCertificate> {
    use Verdict::{Accept, Refuse};
    let base = || RawCertificate::user(subject, principal, now);
    let mut out = Vec::new();
    let mut push = |name, blob, openssh| {
        out.push(HostileCertificate {
            name,
            blob,
            openssh,
            kmssh_stricter: None,
        });
    };

    push("as kmssh issues it", base().sign(ca).await, Accept);

    let mut c = base();
    c.critical_options = vec![(b"source-address".to_vec(), value("127.0.0.1/32,::1"))];
    push("source-address naming loopback", c.sign(ca).await, Accept);

    let mut c = base();
    c.extensions
        .push((b"tag@example.com".to_vec(), value("anything")));
    c.extensions.sort();
    push("a custom extension sshd ignores", c.sign(ca).await, Accept);

    let mut c = base();
    c.key_id = b"ops\nPrincipals: root\x1b[2J".to_vec();
    push(
        "a key id with a newline and an escape (sshd only logs it)",
        c.sign(ca).await,
        Accept,
    );

    // Altered after signing: `permit-pty`'s empty data rewritten as an empty string
    // inside. ssh-key reads the same extension; the signed bytes differ.
    let ca_key = ssh_public_key(ca.public_key());
    let longer_pty = || {
        let mut c = base();
        for (name, data) in &mut c.extensions {
            if name == b"permit-pty" {
                *data = value("");
            }
        }
        c
    };
    let signed = base().sign(ca).await;
    let signature = &signed[base().to_be_signed(&ca_key).len()..];
    push(
        "altered after signing: a flag's data rewritten in a longer form",
        [longer_pty().to_be_signed(&ca_key).as_slice(), signature].concat(),
        Refuse,
    );

    push(
        "signed: a flag extension with data (sshd: extra data)",
        longer_pty().sign(ca).await,
        Refuse,
    );

    let mut c = base();
    c.critical_options = vec![(
        b"force-command".to_vec(),
        [value("/bin/true"), vec![0, 0, 0, 0]].concat(),
    )];
    push(
        "signed: force-command with bytes after the command",
        c.sign(ca).await,
        Refuse,
    );

    let mut c = base();
    c.critical_options = vec![(b"tag@example.com".to_vec(), value("x"))];
    push("an unknown critical option", c.sign(ca).await, Refuse);

    let mut c = base();
    c.critical_options = vec![(b"source-address".to_vec(), value("127.0.0.1/8"))];
    push(
        "source-address with host bits set (sshd: inconsistent mask length)",
        c.sign(ca).await,
        Refuse,
    );

    let mut c = base();
    c.critical_options = vec![(b"source-address".to_vec(), value("localhost"))];
    push("source-address naming a host", c.sign(ca).await, Refuse);

    let mut c = base();
    c.principals = (0..256)
        .map(|i| format!("u{i}").into_bytes())
        .chain([principal.as_bytes().to_vec()])
        .collect();
    push("257 principals", c.sign(ca).await, Refuse);

    let mut c = base();
    c.valid_after = now - 7200;
    c.valid_before = now - 3600;
    push("expired", c.sign(ca).await, Refuse);

    let mut c = base();
    c.valid_after = now + 3600;
    c.valid_before = now + 7200;
    push("not yet valid", c.sign(ca).await, Refuse);

    let mut c = base();
    c.cert_type = 2;
    push(
        "a host certificate presented by a user",
        c.sign(ca).await,
        Refuse,
    );

    let mut trailing = base().sign(ca).await;
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    push("bytes after the signature", trailing, Refuse);

    let mut corrupted = base().sign(ca).await;
    let last = corrupted.len() - 1;
    corrupted[last] ^= 1;
    push("a corrupted signature", corrupted, Refuse);

    // Signed by another key while naming the trusted CA as the signer.
    let mut forged = base().to_be_signed(&ca_key);
    let signature = other_ca.sign_message(&forged).await.expect("signs");
    ssh_signature(&signature)
        .expect("SSH form")
        .encode_prefixed(&mut forged)
        .expect("encodes");
    push("signed by another key naming the CA", forged, Refuse);

    let mut c = base();
    c.extensions.reverse();
    push("extensions out of order", c.sign(ca).await, Accept);
    if let Some(last) = out.last_mut() {
        last.kmssh_stricter = Some(
            "PROTOCOL.certkeys requires options and extensions sorted by name; sshd does not check, kmssh refuses to read such a certificate",
        );
    }

    out
}

/// A small deterministic generator (xorshift64*), so a failing mutation can be replayed
/// from its index.
#[derive(Clone, Debug)]
pub struct Mutator(u64);

impl Mutator {
    /// A generator from `seed` (0 is replaced by a fixed odd constant).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// `seed` mutated by one to four edits: a flipped bit, a random byte, a byte
    /// deleted or duplicated, a slice repeated, or the tail cut.
    #[must_use]
    pub fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..=self.below(4) {
            if bytes.is_empty() {
                bytes.push(0);
            }
            let at = self.below(bytes.len());
            match self.below(6) {
                0 => bytes[at] ^= 1 << self.below(8),
                1 => bytes[at] = u8::try_from(self.next() & 0xff).unwrap_or(0),
                2 => {
                    bytes.remove(at);
                }
                3 => bytes.insert(at, bytes[at]),
                4 => {
                    let len = self.below(16).min(bytes.len() - at);
                    let slice = bytes[at..at + len].to_vec();
                    bytes.splice(at..at, slice);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    }
}

/// A valid request to mutate: a user request with options, extensions of both kinds and
/// two principals, for `subject`.
///
/// # Panics
/// If the request does not encode.
#[must_use]
pub fn seed_request(subject: &KeyData, now: u64) -> Vec<u8> {
    use kmssh_pki::{CertificateType, CriticalOption, Extension};
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: vec![
            CriticalOption::ForceCommand("/usr/bin/id".into()),
            CriticalOption::SourceAddress("10.0.0.0/8".into()),
        ],
        extensions: vec![
            Extension::PermitPty,
            Extension::Custom {
                name: "login@example.com".into(),
                value: "alice".into(),
            },
        ],
        key_id: "mutant".into(),
        serial: 7,
        principals: vec!["alice".into(), "bob".into()],
        valid_after: now - 60,
        valid_before: now + 3600,
        public_key: subject.clone(),
    }
    .to_proto()
    .expect("the seed encodes")
}
