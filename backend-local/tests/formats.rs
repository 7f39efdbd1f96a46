//! Every key file form of every family, made by the real `ssh-keygen` and `openssl` in a
//! temporary directory: each loads with the public key its tool derives, signs every
//! algorithm of its kind with both engines, and each engine's signatures verify with the
//! other's verifier; what cannot be used is refused by name, in one line.

use std::path::{Path, PathBuf};
use std::process::Command;

use kmssh_backend_local::{LocalKey, LocalOptions, SecretKey, SigningEngine};
use kmssh_core::{
    Algorithm, Curve, ErrorKind, KeyFamily, KeySpec, KmsKey, PublicKey, Signature, SigningInput,
};

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn chmod_600(path: &Path) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
}

/// `ssh-keygen -t TYPE [-b BITS] [-m FORMAT]`, unencrypted unless `passphrase`.
fn ssh_keygen(path: &Path, kind: &str, bits: Option<u32>, format: Option<&str>, passphrase: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", passphrase, "-t", kind, "-C", "kmssh test"]);
    if let Some(bits) = bits {
        cmd.arg("-b").arg(bits.to_string());
    }
    if let Some(format) = format {
        cmd.args(["-m", format]);
    }
    run(cmd.arg("-f").arg(path));
}

/// `openssl COMMAND -out PATH ARGS…` (`genrsa` wants its size last), then mode 0600.
fn openssl(path: &Path, args: &[&str]) {
    let (command, args) = args.split_first().expect("a command");
    run(Command::new("openssl")
        .arg(command)
        .arg("-out")
        .arg(path)
        .args(args));
    chmod_600(path);
}

/// One key file and what it holds.
struct KeyFile {
    path: PathBuf,
    spec: KeySpec,
    /// The public key its tool derives (`ssh-keygen`'s `.pub`, `openssl pkey -pubout`).
    public: PublicKey,
    label: &'static str,
}

fn ssh_public(path: &Path) -> PublicKey {
    let line = std::fs::read_to_string(path.with_extension("pub")).expect(".pub");
    let key = ssh_key::PublicKey::from_openssh(line.trim()).expect("parses");
    match key.key_data() {
        ssh_key::public::KeyData::Ecdsa(ec) => {
            let curve = match ec.curve() {
                ssh_key::EcdsaCurve::NistP256 => Curve::P256,
                ssh_key::EcdsaCurve::NistP384 => Curve::P384,
                ssh_key::EcdsaCurve::NistP521 => Curve::P521,
            };
            PublicKey::Ecdsa(
                kmssh_core::EcPublicKey::from_sec1_bytes(curve, ec.as_sec1_bytes()).expect("point"),
            )
        }
        ssh_key::public::KeyData::Rsa(rsa) => {
            PublicKey::rsa(kmssh_core::rsa::PublicKey::try_from(rsa).expect("RSA public key"))
                .expect("size")
        }
        ssh_key::public::KeyData::Ed25519(ed) => PublicKey::ed25519(ed.as_ref()).expect("ed25519"),
        other => panic!("unexpected {other:?}"),
    }
}

fn openssl_public(path: &Path) -> PublicKey {
    let pem = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(path));
    PublicKey::from_public_key_pem(&String::from_utf8(pem).expect("utf-8")).expect("SPKI")
}

/// Every form of every family: OpenSSH, PKCS#8, PKCS#1 and SEC1, from both tools.
fn every_key_file(dir: &Path) -> Vec<KeyFile> {
    let mut files = Vec::new();
    let mut ssh = |name: &str, kind: &str, bits: Option<u32>, format, spec, label| {
        let path = dir.join(name);
        ssh_keygen(&path, kind, bits, format, "");
        files.push(KeyFile {
            public: ssh_public(&path),
            path,
            spec,
            label,
        });
    };
    for curve in Curve::ALL {
        let bits = match curve {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        };
        let spec = KeySpec::Ecdsa(curve);
        ssh(
            &format!("ossh-ec{bits}"),
            "ecdsa",
            Some(bits),
            None,
            spec,
            "OpenSSH",
        );
        ssh(
            &format!("pem-ec{bits}"),
            "ecdsa",
            Some(bits),
            Some("PEM"),
            spec,
            "SEC1 (ssh-keygen -m PEM)",
        );
        ssh(
            &format!("p8-ssh-ec{bits}"),
            "ecdsa",
            Some(bits),
            Some("PKCS8"),
            spec,
            "PKCS#8 (ssh-keygen -m PKCS8)",
        );
    }
    for bits in KeySpec::RSA_SIZES {
        ssh(
            &format!("ossh-rsa{bits}"),
            "rsa",
            Some(bits),
            None,
            KeySpec::Rsa(bits),
            "OpenSSH",
        );
    }
    ssh(
        "pem-rsa2048",
        "rsa",
        Some(2048),
        Some("PEM"),
        KeySpec::Rsa(2048),
        "PKCS#1 (ssh-keygen -m PEM)",
    );
    ssh(
        "p8-ssh-rsa3072",
        "rsa",
        Some(3072),
        Some("PKCS8"),
        KeySpec::Rsa(3072),
        "PKCS#8 (ssh-keygen -m PKCS8)",
    );
    ssh(
        "ossh-ed25519",
        "ed25519",
        None,
        None,
        KeySpec::Ed25519,
        "OpenSSH",
    );

    let mut ossl = |name: &str, args: &[&str], spec, label| {
        let path = dir.join(name);
        openssl(&path, args);
        files.push(KeyFile {
            public: openssl_public(&path),
            path,
            spec,
            label,
        });
    };
    for (curve, name) in [
        (Curve::P256, "P-256"),
        (Curve::P384, "P-384"),
        (Curve::P521, "P-521"),
    ] {
        let paramgen = format!("ec_paramgen_curve:{name}");
        let spec = KeySpec::Ecdsa(curve);
        ossl(
            &format!("p8-{name}.pem"),
            &["genpkey", "-algorithm", "EC", "-pkeyopt", &paramgen],
            spec,
            "PKCS#8 (openssl genpkey)",
        );
        // SEC1 after an `EC PARAMETERS` block, as `openssl ecparam -genkey` writes.
        let ossl_name = match curve {
            Curve::P256 => "prime256v1",
            Curve::P384 => "secp384r1",
            Curve::P521 => "secp521r1",
        };
        ossl(
            &format!("sec1-{name}.pem"),
            &["ecparam", "-genkey", "-name", ossl_name],
            spec,
            "SEC1 (openssl ecparam -genkey)",
        );
    }
    for bits in KeySpec::RSA_SIZES {
        let keygen_bits = format!("rsa_keygen_bits:{bits}");
        ossl(
            &format!("p8-rsa{bits}.pem"),
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", &keygen_bits],
            KeySpec::Rsa(bits),
            "PKCS#8 (openssl genpkey)",
        );
    }
    ossl(
        "pkcs1-rsa2048.pem",
        &["genrsa", "-traditional", "2048"],
        KeySpec::Rsa(2048),
        "PKCS#1 (openssl genrsa -traditional)",
    );
    ossl(
        "p8-rsa4096-genrsa.pem",
        &["genrsa", "4096"],
        KeySpec::Rsa(4096),
        "PKCS#8 (openssl genrsa)",
    );
    ossl(
        "p8-ed25519.pem",
        &["genpkey", "-algorithm", "ED25519"],
        KeySpec::Ed25519,
        "PKCS#8 (openssl genpkey)",
    );
    files
}

fn options(engine: SigningEngine) -> LocalOptions {
    LocalOptions {
        engine: Some(engine),
        verify: true,
        ..LocalOptions::default()
    }
}

/// Signs `message` with every algorithm the key offers, from the message and (for
/// pre-hashed algorithms) from its digest, checking each against the public key.
async fn signatures(key: &LocalKey, message: &[u8]) -> Vec<(Algorithm, Signature)> {
    let mut made = Vec::new();
    for &algorithm in key.algorithms() {
        let signature = key
            .sign(algorithm, SigningInput::Message(message))
            .await
            .expect("signs the message");
        assert_eq!(signature.algorithm(), algorithm);
        let payload = algorithm.digest(message);
        let payload = payload.as_deref().unwrap_or(message);
        key.public_key()
            .verify(algorithm, payload, &signature)
            .expect("verifies");
        if let Some(digest) = algorithm.digest(message) {
            let from_digest = key
                .sign(algorithm, SigningInput::Digest(&digest))
                .await
                .expect("signs the digest");
            key.public_key()
                .verify(algorithm, &digest, &from_digest)
                .expect("verifies");
        }
        made.push((algorithm, signature));
    }
    made
}

/// AWS-LC's own verifier, independent of the RustCrypto verifiers core uses.
#[cfg(feature = "aws-lc")]
fn aws_lc_verifies(
    public: &PublicKey,
    algorithm: Algorithm,
    message: &[u8],
    signature: &Signature,
) {
    use aws_lc_rs::signature as lc;
    use kmssh_core::spki::EncodePublicKey as _;
    let verifier: &'static dyn lc::VerificationAlgorithm = match algorithm {
        Algorithm::EcdsaP256Sha256 => &lc::ECDSA_P256_SHA256_ASN1,
        Algorithm::EcdsaP384Sha384 => &lc::ECDSA_P384_SHA384_ASN1,
        Algorithm::EcdsaP521Sha512 => &lc::ECDSA_P521_SHA512_ASN1,
        Algorithm::RsaPkcs1Sha256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RsaPkcs1Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RsaPkcs1Sha512 => &lc::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::Ed25519 => &lc::ED25519,
    };
    let key_bytes = match public {
        PublicKey::Ed25519(k) => k.as_bytes().to_vec(),
        other => other.to_public_key_der().expect("SPKI").as_bytes().to_vec(),
    };
    lc::UnparsedPublicKey::new(verifier, key_bytes)
        .verify(message, &signature.to_bytes())
        .unwrap_or_else(|_| panic!("AWS-LC verifies the {algorithm} signature"));
}

#[tokio::test]
async fn every_form_of_every_family_loads_and_both_engines_sign_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = every_key_file(dir.path());
    let mut covered = std::collections::BTreeSet::new();
    let message = b"kmssh local key file test";
    for file in &files {
        let what = format!("{} {} ({})", file.label, file.spec, file.path.display());
        let secret = SecretKey::read_file(&file.path).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(secret.spec(), file.spec, "{what}");
        assert_eq!(
            secret.public_key(),
            file.public,
            "{what}: the tool's public key"
        );
        covered.insert(file.spec);
        let mut by_engine = Vec::new();
        for &engine in SigningEngine::available() {
            let key = LocalKey::from_file(&file.path, options(engine)).expect("opens");
            assert_eq!(key.engine(), engine);
            assert_eq!(key.public_key(), &file.public, "{what}");
            assert_eq!(key.algorithms(), file.spec.algorithms(), "{what}");
            by_engine.push(signatures(&key, message).await);
        }
        #[cfg(feature = "aws-lc")]
        for made in &by_engine {
            for (algorithm, signature) in made {
                aws_lc_verifies(&file.public, *algorithm, message, signature);
            }
        }
        // PKCS#1 v1.5 and Ed25519 are deterministic: both engines make the same bytes.
        if file.spec.family() != KeyFamily::Ecdsa
            && let [first, rest @ ..] = by_engine.as_slice()
        {
            for other in rest {
                assert_eq!(first, other, "{what}: engines disagree");
            }
        }
    }
    for spec in KeySpec::ALL {
        assert!(covered.contains(&spec), "no file of {spec}");
    }
}

/// Keys this crate generates are written as OpenSSH files that `ssh-keygen` reads (and
/// derives the same public key from) and that read back as the same key.
#[tokio::test]
async fn generated_keys_of_every_kind_round_trip_through_ssh_keygen() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    for spec in KeySpec::ALL {
        let path = dir.path().join(spec.to_string().replace(' ', "-"));
        let secret = kmssh_backend_local::create_key_file(&path, spec).expect("creates");
        assert_eq!(secret.spec(), spec);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{spec}");
        let derived = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&path));
        std::fs::write(path.with_extension("pub"), &derived).expect("write .pub");
        assert_eq!(ssh_public(&path), secret.public_key(), "{spec}");
        let key = LocalKey::from_file(&path, LocalOptions::default()).expect("reads back");
        assert_eq!(key.public_key(), &secret.public_key(), "{spec}");
        signatures(&key, b"round trip").await;
    }
}

/// An `openssh-key-v1` file with one key, given its public blob and the private fields
/// after the check integers, as ssh-keygen lays it out (PROTOCOL.key).
fn openssh_file(public: &[u8], private_fields: &[u8]) -> String {
    use ssh_key::encoding::Encode;
    let mut private = Vec::new();
    for part in [0x1234_5678u32, 0x1234_5678] {
        part.encode(&mut private).expect("enc");
    }
    private.extend_from_slice(private_fields);
    "comment".encode(&mut private).expect("enc");
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut blob = b"openssh-key-v1\0".to_vec();
    for s in ["none", "none"] {
        s.encode(&mut blob).expect("enc");
    }
    [0u8; 0].as_slice().encode(&mut blob).expect("enc");
    1u32.encode(&mut blob).expect("enc");
    public.encode(&mut blob).expect("enc");
    private.as_slice().encode(&mut blob).expect("enc");
    let b64 = <base64ct::Base64 as base64ct::Encoding>::encode_string(&blob);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// A FIDO security key's OpenSSH file (PROTOCOL.u2f): a public key, an application and
/// a key handle; the private key stays on the token.
fn sk_key_file(key_type: &str) -> String {
    use ssh_key::encoding::Encode;
    let ed = key_type.starts_with("sk-ssh-ed25519");
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let mut field = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        fields.push(v);
    };
    field(&|v| key_type.encode(v).expect("enc"));
    if ed {
        field(&|v| [7u8; 32].as_slice().encode(v).expect("enc"));
    } else {
        field(&|v| "nistp256".encode(v).expect("enc"));
        field(&|v| [4u8; 65].as_slice().encode(v).expect("enc"));
    }
    field(&|v| "ssh:".encode(v).expect("enc"));
    let public: Vec<u8> = fields.concat();
    let mut private = public.clone();
    private.push(0x01); // flags: user presence required
    [9u8; 64].as_slice().encode(&mut private).expect("enc"); // key handle
    "".encode(&mut private).expect("enc"); // reserved
    openssh_file(&public, &private)
}

#[test]
fn what_cannot_be_used_is_refused_by_name_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let refused = |path: &Path, kind: ErrorKind, names: &[&str]| {
        let err = LocalKey::from_file(path, LocalOptions::default())
            .expect_err(&format!("{} is refused", path.display()));
        let text = err.to_string();
        assert_eq!(err.kind(), kind, "{text}");
        for name in names {
            assert!(text.contains(name), "`{name}` not in: {text}");
        }
        assert_eq!(text.lines().count(), 1, "{text}");
        eprintln!("refused: {text}");
    };
    let write = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).expect("write");
        chmod_600(&path);
        path
    };

    // Passphrase-protected OpenSSH keys of every family, encrypted PKCS#8, and the
    // legacy encrypted PEM of PKCS#1 and SEC1.
    for (kind, bits) in [("ecdsa", Some(256)), ("rsa", Some(2048)), ("ed25519", None)] {
        let path = d.join(format!("locked-{kind}"));
        ssh_keygen(&path, kind, bits, None, "secret");
        refused(
            &path,
            ErrorKind::InvalidKey,
            &["passphrase", "ssh-keygen -p"],
        );
    }
    let p8 = d.join("p8-locked.pem");
    openssl(
        &p8,
        &[
            "genpkey",
            "-algorithm",
            "ED25519",
            "-aes-256-cbc",
            "-pass",
            "pass:secret",
        ],
    );
    refused(&p8, ErrorKind::InvalidKey, &["encrypted", "PKCS#8"]);
    let pkcs1 = d.join("pkcs1-locked.pem");
    openssl(
        &pkcs1,
        &[
            "genrsa",
            "-traditional",
            "-aes256",
            "-passout",
            "pass:secret",
            "2048",
        ],
    );
    refused(
        &pkcs1,
        ErrorKind::InvalidKey,
        &["encrypted", "Proc-Type", "RSA PRIVATE KEY"],
    );
    let sec1 = d.join("sec1-locked.pem");
    ssh_keygen(&sec1, "ecdsa", Some(256), Some("PEM"), "secret");
    refused(
        &sec1,
        ErrorKind::InvalidKey,
        &["encrypted", "EC PRIVATE KEY"],
    );

    // DSA in every form: OpenSSH (when this ssh-keygen still makes it), PKCS#8 and the
    // traditional `DSA PRIVATE KEY`.
    let dsa = d.join("dsa");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "dsa", "-f"])
        .arg(&dsa)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if made {
        refused(&dsa, ErrorKind::UnsupportedAlgorithm, &["DSA", "ssh-dss"]);
    } else {
        eprintln!("skipped: this ssh-keygen makes no DSA keys");
    }
    let params = d.join("dsa-params.pem");
    openssl(
        &params,
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:1024",
        ],
    );
    let dsa_p8 = d.join("dsa-p8.pem");
    openssl(
        &dsa_p8,
        &["genpkey", "-paramfile", &params.display().to_string()],
    );
    refused(&dsa_p8, ErrorKind::UnsupportedAlgorithm, &["DSA"]);
    let dsa_traditional = d.join("dsa-trad.pem");
    openssl(
        &dsa_traditional,
        &["pkey", "-traditional", "-in", &dsa_p8.display().to_string()],
    );
    refused(&dsa_traditional, ErrorKind::UnsupportedAlgorithm, &["DSA"]);

    // FIDO security keys.
    for key_type in [
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ] {
        let path = write(key_type, &sk_key_file(key_type));
        refused(
            &path,
            ErrorKind::UnsupportedAlgorithm,
            &[key_type, "security key"],
        );
    }

    // RSA under 2048 bits, in each form.
    let small = d.join("rsa1024");
    ssh_keygen(&small, "rsa", Some(1024), None, "");
    refused(
        &small,
        ErrorKind::UnsupportedAlgorithm,
        &["RSA-1024", "2048"],
    );
    let small_p8 = d.join("rsa1024-p8.pem");
    openssl(&small_p8, &["genrsa", "1024"]);
    refused(&small_p8, ErrorKind::UnsupportedAlgorithm, &["RSA-1024"]);
    let small_pkcs1 = d.join("rsa1024-pkcs1.pem");
    openssl(&small_pkcs1, &["genrsa", "-traditional", "1024"]);
    refused(&small_pkcs1, ErrorKind::UnsupportedAlgorithm, &["RSA-1024"]);

    // Other PKCS#8 algorithms and curves.
    for (name, args, names) in [
        (
            "ed448.pem",
            &["genpkey", "-algorithm", "ED448"][..],
            &["Ed448"][..],
        ),
        (
            "x25519.pem",
            &["genpkey", "-algorithm", "X25519"][..],
            &["X25519"][..],
        ),
        (
            "pss.pem",
            &[
                "genpkey",
                "-algorithm",
                "RSA-PSS",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ][..],
            &["RSA-PSS"][..],
        ),
        (
            "k1.pem",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:secp256k1",
            ][..],
            &["secp256k1"][..],
        ),
    ] {
        let path = d.join(name);
        openssl(&path, args);
        refused(&path, ErrorKind::UnsupportedAlgorithm, names);
    }
}

/// An RSA key signs each RSA algorithm and nothing else; an Ed25519 key takes messages,
/// not digests; a digest of the wrong length is refused before any signing.
#[tokio::test]
async fn keys_sign_only_their_algorithms_and_inputs() {
    let rsa = LocalKey::generate(KeySpec::Rsa(2048), LocalOptions::default()).expect("rsa");
    assert_eq!(rsa.algorithms(), &Algorithm::RSA);
    assert_eq!(rsa.algorithm(), Algorithm::RsaPkcs1Sha512);
    assert_eq!(rsa.uri().as_str(), "local:ephemeral?type=rsa&bits=2048");
    for wrong in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let err = rsa
            .sign(wrong, SigningInput::Message(b"m"))
            .await
            .expect_err("not an RSA algorithm");
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{err}");
        assert!(err.to_string().contains("RSA-2048"), "{err}");
    }
    let err = rsa
        .sign(Algorithm::RsaPkcs1Sha256, SigningInput::Digest(&[0; 64]))
        .await
        .expect_err("a SHA-512-sized digest for SHA-256");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    let ed = LocalKey::generate(KeySpec::Ed25519, LocalOptions::default()).expect("ed25519");
    assert_eq!(ed.uri().as_str(), "local:ephemeral?type=ed25519");
    let err = ed
        .sign(Algorithm::Ed25519, SigningInput::Digest(&[0; 64]))
        .await
        .expect_err("Ed25519 signs messages");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Messages of any size: there is no provider limit in process.
    let big = vec![0x5a; 100_000];
    let signature = ed
        .sign(Algorithm::Ed25519, SigningInput::Message(&big))
        .await
        .expect("signs");
    ed.public_key()
        .verify(Algorithm::Ed25519, &big, &signature)
        .expect("verifies");
    let signature = ed
        .sign_message(b"default")
        .await
        .expect("default algorithm");
    assert_eq!(signature.algorithm(), Algorithm::Ed25519);
}

/// PKCS#8 v2 (`OneAsymmetricKey` with the public key), as AWS-LC writes Ed25519 keys,
/// loads; one whose public key is not its seed's is refused.
#[cfg(feature = "aws-lc")]
#[test]
fn pkcs8_v2_ed25519_keys_load_and_their_public_key_is_checked() {
    use aws_lc_rs::encoding::AsDer as _;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().expect("generates");
    let v2: aws_lc_rs::encoding::Pkcs8V2Der<'static> = pair.as_der().expect("PKCS#8 v2");
    let pem = |der: &[u8]| {
        let b64 = <base64ct::Base64 as base64ct::Encoding>::encode_string(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    };
    let secret = SecretKey::from_pem(&pem(v2.as_ref())).expect("loads");
    let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
    assert_eq!(
        secret.public_key(),
        PublicKey::ed25519(public.as_ref()).expect("key")
    );
    // The public key is the DER's last 32 bytes.
    let mut other = v2.as_ref().to_vec();
    let last = other.len() - 1;
    other[last] ^= 1;
    let err = SecretKey::from_pem(&pem(&other)).expect_err("mismatched public key");
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
}
