//! OpenSSH reads the token: `ssh-keygen -D libkmssh_pkcs11.so` prints the public keys
//! `kmssh pubkey` prints (`kmssh_pki::pubkey_string`), and skips Ed25519 (OpenSSH 9.2 has
//! no Ed25519 over PKCS#11); and signs with it: `ssh-agent -P` + `ssh-add -s` load the
//! module into OpenSSH's own PKCS#11 helper, whose signatures (`CKM_ECDSA` on the digest,
//! `CKM_RSA_PKCS` on the DigestInfo ssh builds) `ssh-keygen -Y verify` accepts.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{ALL_SPECS, KeySet, run};

/// `type base64`, without the comment.
fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ECDSA and RSA keys, in configuration order, each as `kmssh pubkey` prints it.
#[test]
fn ssh_keygen_lists_the_same_public_keys() {
    let set = KeySet::new(&ALL_SPECS, "");
    let mut command = Command::new("ssh-keygen");
    command.arg("-D").arg(support::module_path());
    let out = run(command, &set.config, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    let listed: Vec<String> = out.stdout.lines().map(key_part).collect();
    let expected: Vec<String> = set
        .keys
        .iter()
        .filter(|k| k.label != "ed25519")
        .map(|k| key_part(&kmssh_pki::pubkey_string(&k.public_key, &k.label)))
        .collect();
    assert_eq!(listed, expected, "stderr: {}", out.stderr);
    // ssh-keygen prints each key's label as its comment.
    for (line, key) in out.stdout.lines().zip(set.keys.iter()) {
        assert!(line.ends_with(&format!(" {}", key.label)), "{line}");
    }
    assert!(
        !out.stdout.contains("ssh-ed25519"),
        "OpenSSH 9.2 skips Ed25519 tokens: {}",
        out.stdout
    );
}

/// An `ssh-agent -D` this test started, stopped by its pid when dropped.
struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh-add -s` loads the module into ssh-agent; `ssh-keygen -Y sign` signs through it
/// with each ECDSA and RSA key, and `ssh-keygen -Y verify` accepts every signature.
#[test]
fn ssh_agent_signs_through_the_module() {
    let set = KeySet::new(&support::ALL_SPECS[..4], "");
    let dir = set.dir.path();
    let socket = dir.join("agent.sock");
    let module = support::module_path();
    let child = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .arg("-P")
        .arg(&module)
        .env("KMSSH_PKCS11_CONFIG", &set.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let _agent = Agent { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "ssh-agent did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let limit = Duration::from_secs(60);
    let with_agent = |program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut command = Command::new(program);
        command.env("SSH_AUTH_SOCK", &socket);
        for arg in args {
            command.arg(arg);
        }
        run(command, &set.config, limit)
    };
    // ssh-add asks for a PIN; the token needs none, so an empty answer (stdin is null).
    let added = with_agent("ssh-add", &[&"-s", &module]);
    assert_eq!(added.code, Some(0), "{added:?}");
    let listed = with_agent("ssh-add", &[&"-L"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    assert_eq!(listed.stdout.lines().count(), 4, "{}", listed.stdout);
    let data = dir.join("data");
    std::fs::write(
        &data,
        b"signed by ssh-agent through kmssh's PKCS#11 module\n",
    )
    .expect("data");
    for key in &set.keys {
        let public = dir.join(format!("{}.pub", key.label));
        let line = kmssh_pki::pubkey_string(&key.public_key, &key.label);
        std::fs::write(&public, format!("{line}\n")).expect("pub");
        let signature = dir.join("data.sig");
        let _ = std::fs::remove_file(&signature);
        let signed = with_agent(
            "ssh-keygen",
            &[&"-Y", &"sign", &"-n", &"file", &"-f", &public, &data],
        );
        assert_eq!(signed.code, Some(0), "{}: {signed:?}", key.label);
        let allowed = dir.join("allowed_signers");
        std::fs::write(&allowed, format!("signer {line}\n")).expect("allowed");
        let verified = verify(&allowed, &signature, &data, &set.config);
        assert_eq!(verified.code, Some(0), "{}: {verified:?}", key.label);
        assert!(
            verified
                .stdout
                .contains("Good \"file\" signature for signer"),
            "{verified:?}"
        );
    }
}

fn verify(allowed: &Path, signature: &Path, data: &Path, config: &Path) -> support::Output {
    let mut command = Command::new("sh");
    command.arg("-c").arg(format!(
        "exec ssh-keygen -Y verify -f '{}' -I signer -n file -s '{}' < '{}'",
        allowed.display(),
        signature.display(),
        data.display()
    ));
    run(command, config, Duration::from_secs(60))
}
