//! The conformance suite against the local backend: every curve, every signing engine
//! compiled in (AWS-LC by default, RustCrypto always).

use kmssh_backend_local as _;
use kmssh_conformance::{conformance_suite, open_key};

conformance_suite!(
    p256_rustcrypto,
    open_key("local:ephemeral?curve=p256&engine=rustcrypto")
);
conformance_suite!(
    p384_rustcrypto,
    open_key("local:ephemeral?curve=p384&engine=rustcrypto")
);
conformance_suite!(
    p521_rustcrypto,
    open_key("local:ephemeral?curve=p521&engine=rustcrypto")
);

#[cfg(feature = "local-aws-lc")]
conformance_suite!(
    p256_aws_lc,
    open_key("local:ephemeral?curve=p256&engine=aws-lc")
);
#[cfg(feature = "local-aws-lc")]
conformance_suite!(
    p384_aws_lc,
    open_key("local:ephemeral?curve=p384&engine=aws-lc")
);
#[cfg(feature = "local-aws-lc")]
conformance_suite!(
    p521_aws_lc,
    open_key("local:ephemeral?curve=p521&engine=aws-lc")
);

/// A file key reached through the registry (`local:PATH`) runs the same cases.
mod file_key {
    use std::sync::OnceLock;

    static KEY_FILE: OnceLock<String> = OnceLock::new();

    /// One OpenSSH P-384 key file made by ssh-keygen, shared by this module's tests.
    pub fn uri() -> String {
        KEY_FILE
            .get_or_init(|| {
                // Under target/, so nothing is left behind outside the build directory.
                let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-file-key");
                std::fs::create_dir_all(&dir).expect("dir");
                let path = dir.join(format!("ca_key-{}", std::process::id()));
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(path.with_extension("pub"));
                let out = std::process::Command::new("ssh-keygen")
                    .args(["-q", "-N", "", "-t", "ecdsa", "-b", "384", "-f"])
                    .arg(&path)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("ssh-keygen");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                format!("local:{}", path.display())
            })
            .clone()
    }
}

conformance_suite!(p384_file, open_key(&file_key::uri()));
