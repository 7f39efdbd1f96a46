//! Opening local keys: every URI form, every file format (made by `ssh-keygen` and
//! `openssl` at test time), both engines, and the errors for what cannot be used.

use std::path::{Path, PathBuf};
use std::process::Command;

use kmssh_backend_local::{LocalKey, LocalOptions, SigningEngine};
use kmssh_core::{Algorithm, Curve, ErrorKind, KeySpec, KeyUri, KmsKey, SigningInput};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssh_key(dir: &Path, name: &str, kind: &str, bits: &str) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", kind, "-b", bits, "-f"])
        .arg(&path));
    path
}

fn openssl_key(dir: &Path, name: &str, curve: &str, pkcs8: bool) -> PathBuf {
    let path = dir.join(name);
    if pkcs8 {
        run(Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .arg("-out")
            .arg(&path));
    } else {
        // Writes an `EC PARAMETERS` block before the key, as people's files often have.
        run(Command::new("openssl")
            .args(["ecparam", "-genkey", "-name", curve, "-out"])
            .arg(&path));
    }
    path
}

async fn assert_signs(key: &LocalKey, algorithm: Algorithm) {
    assert_eq!(key.algorithm(), algorithm);
    let message = b"local key test";
    let signature = key.sign_message(message).await.expect("signs");
    let digest = algorithm.digest(message);
    let payload = digest.as_deref().unwrap_or(message);
    key.public_key()
        .verify(algorithm, payload, &signature)
        .expect("verifies");
}

/// Writes a file as a private key should be: mode 0600.
fn write_private(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).expect("write");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
}

fn open_uri(uri: &KeyUri) -> kmssh_core::Result<LocalKey> {
    LocalKey::open_sync(uri, &LocalOptions::default())
}

fn uri(s: &str) -> KeyUri {
    KeyUri::parse(s).expect("valid URI")
}

#[tokio::test]
async fn ephemeral_keys_of_every_kind_and_engine() {
    for engine in SigningEngine::available() {
        for spec in KeySpec::ALL {
            let named = kmssh_backend_local::ephemeral_uri(spec).expect("URI");
            let key = open_uri(&uri(&format!("{named}&engine={engine}"))).expect("opens");
            assert_eq!(key.public_key().spec(), spec);
            assert_eq!(key.engine(), *engine);
            assert_signs(&key, spec.algorithms()[0]).await;
        }
    }
    let key = open_uri(&uri("local:ephemeral")).expect("default kind");
    assert_eq!(key.algorithm(), Algorithm::EcdsaP256Sha256);
    // The automatic choice starts with RustCrypto: one signature does not pay for AWS-LC.
    assert_eq!(key.engine(), SigningEngine::RustCrypto);
    // The spellings `--type`, `--bits` and `--curve` take, with ssh-keygen's defaults.
    for (query, spec) in [
        ("curve=p384", KeySpec::Ecdsa(Curve::P384)),
        ("type=ecdsa&bits=521", KeySpec::Ecdsa(Curve::P521)),
        ("type=ec&curve=nistp256", KeySpec::Ecdsa(Curve::P256)),
        ("type=rsa", KeySpec::Rsa(3072)),
        ("type=RSA&bits=2048", KeySpec::Rsa(2048)),
        ("type=ed25519", KeySpec::Ed25519),
    ] {
        let key = open_uri(&uri(&format!("local:ephemeral?{query}"))).expect(query);
        assert_eq!(key.public_key().spec(), spec, "{query}");
    }
    // An RSA key AWS-LC generated signs with AWS-LC from the start: its pool is seeded.
    let rsa = open_uri(&uri("local:ephemeral?type=rsa&bits=2048")).expect("rsa");
    let expected = if cfg!(feature = "aws-lc") {
        SigningEngine::AwsLc
    } else {
        SigningEngine::RustCrypto
    };
    assert_eq!(rsa.engine(), expected);
}

/// Key files open by URI with each engine (every form of every family: `formats.rs`).
#[tokio::test]
async fn key_files_open_by_uri_with_each_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let files = [
        (
            openssh_key(d, "ossh384", "ecdsa", "384"),
            Algorithm::EcdsaP384Sha384,
        ),
        (
            openssl_key(d, "sec1-521.pem", "secp521r1", false),
            Algorithm::EcdsaP521Sha512,
        ),
        (
            openssl_key(d, "p8-256.pem", "P-256", true),
            Algorithm::EcdsaP256Sha256,
        ),
        (
            openssh_key(d, "rsa", "rsa", "2048"),
            Algorithm::RsaPkcs1Sha512,
        ),
        (openssh_key(d, "ed", "ed25519", "256"), Algorithm::Ed25519),
    ];
    for (path, algorithm) in &files {
        for engine in SigningEngine::available() {
            let options = LocalOptions {
                engine: Some(*engine),
                verify: true,
                ..LocalOptions::default()
            };
            let key = LocalKey::from_file(path, options).expect("reads");
            assert_signs(&key, *algorithm).await;
            let via_uri =
                open_uri(&uri(&format!("local:{}?engine={engine}", path.display()))).expect("URI");
            assert_eq!(via_uri.public_key(), key.public_key());
            assert_eq!(via_uri.engine(), *engine);
            assert_signs(&via_uri, *algorithm).await;
        }
    }
}

#[test]
fn unusable_keys_and_uris_get_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let kind_of = |s: &str| open_uri(&uri(s)).err().map(|e| e.kind());

    assert_eq!(
        kind_of(&format!("local:{}/missing", d.display())),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind_of("local:ephemeral?curve=secp256k1"),
        Some(ErrorKind::UnsupportedAlgorithm)
    );
    assert_eq!(
        kind_of("local:ephemeral?colour=blue"),
        Some(ErrorKind::InvalidUri)
    );
    assert_eq!(
        kind_of("local:ephemeral?verify=maybe"),
        Some(ErrorKind::InvalidUri)
    );
    assert_eq!(
        kind_of("local:ephemeral?engine=openssl"),
        Some(ErrorKind::InvalidInput)
    );

    for bad_kind in [
        "type=dsa",
        "type=rsa&bits=1024",
        "type=rsa&bits=2049",
        "type=rsa&curve=p256",
        "type=ed25519&bits=256",
        "type=ecdsa&bits=3072",
    ] {
        let err = open_uri(&uri(&format!("local:ephemeral?{bad_kind}"))).expect_err(bad_kind);
        assert_eq!(
            err.kind(),
            ErrorKind::UnsupportedAlgorithm,
            "{bad_kind}: {err}"
        );
        assert_eq!(
            err.context("uri"),
            Some(format!("local:ephemeral?{bad_kind}").as_str())
        );
    }
    assert_eq!(
        kind_of("local:ephemeral?type=rsa&bits=many"),
        Some(ErrorKind::InvalidUri)
    );
    let k1 = openssl_key(d, "k1.pem", "secp256k1", false);
    let err = open_uri(&uri(&format!("local:{}", k1.display()))).expect_err("secp256k1");
    assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);
    assert!(err.message().contains("secp256k1"), "{err}");
    let k1_p8 = openssl_key(d, "k1p8.pem", "secp256k1", true);
    assert_eq!(
        kind_of(&format!("local:{}", k1_p8.display())),
        Some(ErrorKind::UnsupportedAlgorithm)
    );

    let locked = d.join("locked");
    run(Command::new("ssh-keygen")
        .args(["-q", "-N", "secret", "-t", "ecdsa", "-f"])
        .arg(&locked));
    let err = open_uri(&uri(&format!("local:{}", locked.display()))).expect_err("encrypted");
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert!(err.message().contains("passphrase"), "{err}");

    let p256 = openssh_key(d, "p", "ecdsa", "256");
    let text = std::fs::read_to_string(&p256).expect("read");
    for (name, contents) in [
        ("empty", String::new()),
        ("garbage", "not a key at all".to_owned()),
        ("truncated", text[..text.len() / 2].to_owned()),
        (
            "pub",
            std::fs::read_to_string(d.join("p.pub")).expect("pub"),
        ),
    ] {
        let path = d.join(name);
        write_private(&path, contents.as_bytes());
        assert_eq!(
            kind_of(&format!("local:{}", path.display())),
            Some(ErrorKind::InvalidKey),
            "{name}"
        );
    }
    let big = d.join("big");
    write_private(&big, &[b'A'; 100_000]);
    assert_eq!(
        kind_of(&format!("local:{}", big.display())),
        Some(ErrorKind::InvalidKey)
    );
    // A key file has its own kind.
    for kind in ["curve=p384", "type=rsa", "bits=3072"] {
        assert_eq!(
            kind_of(&format!("local:{}?{kind}", p256.display())),
            Some(ErrorKind::InvalidUri),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn wrong_digest_length_is_refused() {
    let key =
        LocalKey::generate(KeySpec::Ecdsa(Curve::P384), LocalOptions::default()).expect("key");
    let err = key
        .sign_digest(&[0u8; 32])
        .await
        .expect_err("32 bytes for P-384");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(key.uri().as_str(), "local:ephemeral?curve=p384");
}

/// Encodes an unencrypted `openssh-key-v1` file the way ssh-keygen does, with the private
/// scalar as a minimal mpint.
fn openssh_file(curve: &str, point: &[u8], scalar: &[u8]) -> String {
    use ssh_key::encoding::Encode;
    let key_type = format!("ecdsa-sha2-{curve}");
    let mut public = Vec::new();
    key_type.encode(&mut public).expect("enc");
    curve.encode(&mut public).expect("enc");
    point.encode(&mut public).expect("enc");
    let digits: Vec<u8> = scalar.iter().copied().skip_while(|&b| b == 0).collect();
    let mpint = if digits[0] & 0x80 != 0 {
        [&[0u8][..], &digits].concat()
    } else {
        digits
    };
    let mut private = Vec::new();
    for part in [0x1234_5678u32, 0x1234_5678] {
        part.encode(&mut private).expect("enc");
    }
    key_type.encode(&mut private).expect("enc");
    curve.encode(&mut private).expect("enc");
    point.encode(&mut private).expect("enc");
    mpint.as_slice().encode(&mut private).expect("enc");
    "leading-zero".encode(&mut private).expect("enc");
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
    public.as_slice().encode(&mut blob).expect("enc");
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

/// One P-256 key in 512 has a private scalar OpenSSH writes as a 31-byte mpint (a leading
/// zero byte, then one under 0x80), which ssh-key alone refuses. Such files open, and sign.
#[tokio::test]
async fn openssh_keys_with_a_short_private_scalar_open() {
    use kmssh_backend_local::SecretKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = (0..100_000)
        .map(|_| SecretKey::generate(KeySpec::Ecdsa(Curve::P256)).expect("key"))
        .find(|k| matches!(k, SecretKey::P256(s) if s.to_bytes()[0] == 0 && s.to_bytes()[1] < 0x80))
        .expect("a scalar whose mpint is 31 bytes within 100k tries");
    let SecretKey::P256(scalar) = &secret else {
        unreachable!()
    };
    let point = secret
        .public_key()
        .as_ecdsa()
        .expect("ECDSA")
        .to_sec1_bytes();
    let path = dir.path().join("short");
    std::fs::write(&path, openssh_file("nistp256", &point, &scalar.to_bytes())).expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    assert!(
        ssh_key::PrivateKey::read_openssh_file(&path).is_err(),
        "ssh-key now reads short scalars: the fallback in load.rs can go"
    );
    // OpenSSH itself reads the file and derives the same public key.
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen -y");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let derived =
        ssh_key::PublicKey::from_openssh(String::from_utf8_lossy(&out.stdout).trim()).expect("pub");
    let ssh_key::public::KeyData::Ecdsa(ec) = derived.key_data() else {
        panic!("ecdsa")
    };
    assert_eq!(ec.as_sec1_bytes(), point.as_slice());

    for engine in SigningEngine::available() {
        let key = LocalKey::from_file(
            &path,
            LocalOptions {
                engine: Some(*engine),
                verify: true,
                ..LocalOptions::default()
            },
        )
        .expect("opens");
        assert_eq!(key.public_key(), &secret.public_key());
        assert_signs(&key, Algorithm::EcdsaP256Sha256).await;
    }
}

/// `create_if_missing` writes a 0600 OpenSSH key that ssh-keygen reads, reuses it the
/// next time, and refuses what it must not touch: a bad URI creates nothing, and a
/// planted symlink is never written through.
#[tokio::test]
async fn key_files_are_created_once_0600_and_never_through_a_symlink() {
    use kmssh_backend_local::{SecretKey, create_if_missing};
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ca_key");
    let ca = uri(&format!("local:{}", path.display()));
    assert!(create_if_missing(&ca, KeySpec::Ecdsa(Curve::P384)).expect("creates"));
    let mode = std::fs::metadata(&path).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = open_uri(&ca).expect("opens");
    assert_eq!(key.algorithm(), Algorithm::EcdsaP384Sha384);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ecdsa-sha2-nistp384 "));
    let before = std::fs::read(&path).expect("read");
    assert!(!create_if_missing(&ca, KeySpec::Ed25519).expect("reuses"));
    assert_eq!(std::fs::read(&path).expect("read"), before);

    let bad = dir.path().join("bad_key");
    for query in ["bad=1", "type=rsa"] {
        let err = create_if_missing(
            &uri(&format!("local:{}?{query}", bad.display())),
            KeySpec::Rsa(2048),
        )
        .expect_err("bad parameter");
        assert_eq!(err.kind(), ErrorKind::InvalidUri);
        assert!(!bad.exists());
    }
    let err = create_if_missing(&uri("local:ephemeral"), KeySpec::Ecdsa(Curve::P256))
        .expect_err("ephemeral");
    assert_eq!(err.kind(), ErrorKind::InvalidUri);

    let victim = dir.path().join("victim");
    let link = dir.path().join("planted");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let err = SecretKey::generate(KeySpec::Ed25519)
        .expect("key")
        .write_new_file(&link)
        .expect_err("refuses the symlink");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!victim.exists(), "nothing was written through the link");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".kmssh-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files are cleaned up");
}

/// `engine=auto` (the default) signs with RustCrypto, moves to AWS-LC once enough
/// signatures were made for the key's kind, and starts with AWS-LC when the caller expects
/// that many.
#[tokio::test]
async fn the_automatic_engine_follows_the_number_of_signatures() {
    use kmssh_backend_local::{AUTO_AWS_LC_FROM_SIGNATURES, SecretKey, auto_aws_lc_from};
    let upgraded = if cfg!(feature = "aws-lc") {
        SigningEngine::AwsLc
    } else {
        SigningEngine::RustCrypto
    };
    assert_eq!(
        auto_aws_lc_from(KeySpec::Ecdsa(Curve::P384)),
        AUTO_AWS_LC_FROM_SIGNATURES
    );
    // An RSA key read from a file (not generated by AWS-LC) and an Ed25519 key.
    let rsa = kmssh_core::rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("RSA-2048");
    for secret in [
        SecretKey::generate(KeySpec::Ecdsa(Curve::P256)).expect("key"),
        SecretKey::Rsa(Box::new(rsa)),
        SecretKey::generate(KeySpec::Ed25519).expect("key"),
    ] {
        let spec = secret.spec();
        let from = auto_aws_lc_from(spec);
        let key = LocalKey::from_secret(uri("local:test"), &secret, LocalOptions::default())
            .expect("key");
        let algorithm = key.algorithm();
        let digest = algorithm.digest(b"auto");
        let input = match &digest {
            Some(d) => SigningInput::Digest(d),
            None => SigningInput::Message(b"auto"),
        };
        for n in 0..=from {
            assert_eq!(key.engine(), SigningEngine::RustCrypto, "{spec} before {n}");
            key.sign_sync(algorithm, input).expect("signs");
        }
        assert_eq!(key.engine(), upgraded, "{spec} after {from}");
        let batch = LocalKey::from_secret(
            uri("local:test"),
            &secret,
            LocalOptions {
                expected_signatures: Some(from),
                ..LocalOptions::default()
            },
        )
        .expect("key");
        assert_eq!(batch.engine(), upgraded, "{spec}");
        let pinned = LocalKey::from_secret(
            uri("local:test"),
            &secret,
            LocalOptions {
                engine: Some(SigningEngine::RustCrypto),
                ..LocalOptions::default()
            },
        )
        .expect("key");
        for _ in 0..=from {
            pinned.sign_sync(algorithm, input).expect("signs");
        }
        assert_eq!(pinned.engine(), SigningEngine::RustCrypto);
    }
}

/// A key file open to group or others is refused with its mode and the fix, as ssh
/// refuses an "UNPROTECTED PRIVATE KEY FILE", unless the caller opts in (in code or with
/// `?permissions=any`); `permissions=owner` is the default, and other values are refused.
#[tokio::test]
async fn unprotected_key_files_are_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = openssh_key(dir.path(), "ca", "ecdsa", "256");
    let plain = uri(&format!("local:{}", path.display()));
    for mode in [0o644, 0o640, 0o604, 0o660, 0o606, 0o700, 0o601, 0o610] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let unprotected = mode & 0o077 != 0;
        let opened = open_uri(&plain);
        if !unprotected {
            assert_signs(
                &opened.expect("owner-only opens"),
                Algorithm::EcdsaP256Sha256,
            )
            .await;
            continue;
        }
        let err = opened.expect_err("unprotected");
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{mode:o}: {err}");
        let text = err.to_string();
        assert!(text.contains("UNPROTECTED"), "{text}");
        assert!(text.contains(&format!("{mode:04o}")), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        let err = LocalKey::from_file(&path, LocalOptions::default()).expect_err("from_file");
        assert_eq!(err.kind(), ErrorKind::InvalidKey);
        let allowed = LocalOptions {
            allow_unprotected: true,
            ..LocalOptions::default()
        };
        assert_signs(
            &LocalKey::from_file(&path, allowed).expect("allowed in code"),
            Algorithm::EcdsaP256Sha256,
        )
        .await;
        let any = uri(&format!("local:{}?permissions=any", path.display()));
        assert_signs(
            &open_uri(&any).expect("allowed by the URI"),
            Algorithm::EcdsaP256Sha256,
        )
        .await;
        let owner = uri(&format!("local:{}?permissions=owner", path.display()));
        assert!(
            LocalKey::open_sync(&owner, &allowed).is_err(),
            "the URI wins"
        );
    }
    let err = open_uri(&uri(&format!("local:{}?permissions=all", path.display())))
        .expect_err("unknown value");
    assert_eq!(err.kind(), ErrorKind::InvalidUri);
    // Keys in memory have no file to protect.
    open_uri(&uri("local:ephemeral?permissions=owner")).expect("ephemeral");
}

/// Only regular files are key files: a FIFO (which would block a plain open until a
/// writer came), a device that never ends, a directory or a socket are refused at once.
#[tokio::test]
async fn key_paths_that_are_not_regular_files_are_refused_without_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    run(Command::new("mkfifo").arg(&fifo));
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
    let cases = [
        (fifo.clone(), "a FIFO"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (PathBuf::from("/dev/null"), "a character device"),
        (dir.path().to_path_buf(), "a directory"),
        (socket, "a socket"),
    ];
    // On a thread, so that a regression blocks the thread and fails the test instead of
    // hanging it.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (path, what) in cases {
            let opened = open_uri(&uri(&format!("local:{}?permissions=any", path.display())));
            sender.send((path, what, opened.err())).expect("send");
        }
    });
    for _ in 0..5 {
        let (path, what, err) = receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("every open returns (a FIFO must not block)");
        let err = err.unwrap_or_else(|| panic!("{} opened", path.display()));
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
        assert!(err.to_string().contains(what), "{what}: {err}");
        assert!(err.to_string().contains("regular file"), "{err}");
    }
}
