//! The registry sees the backends this build links, names the Cargo feature for the ones
//! it does not, and every list of backends in the repository agrees with core's one
//! list, [`KNOWN_BACKENDS`].

use std::path::Path;

#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
use kmssh_backend_local as _;
use kmssh_core::{ErrorKind, KNOWN_BACKENDS};

/// A URI each backend would open, for the not-compiled-in check.
fn sample_uri(scheme: &str) -> String {
    match scheme {
        "local" => "local:ephemeral?curve=p521".to_owned(),
        "aws-kms" => "aws-kms:alias/ssh-ca".to_owned(),
        "gcp-kms" => {
            "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1".to_owned()
        }
        "azure-kv" => "azure-kv:https://v.vault.azure.net/keys/ca".to_owned(),
        other => panic!("add a sample URI for the new scheme `{other}` here"),
    }
}

fn repository_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn linked_backends_are_known_and_described() {
    let linked = kmssh_core::backends();
    assert!(linked.iter().any(|b| b.scheme == "local"));
    for backend in linked {
        assert!(!backend.description.is_empty());
        assert!(
            KNOWN_BACKENDS.iter().any(|k| k.scheme == backend.scheme),
            "{} is linked but not in KNOWN_BACKENDS",
            backend.scheme
        );
    }
}

#[tokio::test]
async fn every_known_backend_opens_or_names_its_feature() {
    for known in KNOWN_BACKENDS {
        let linked = kmssh_core::backends()
            .iter()
            .any(|b| b.scheme == known.scheme);
        if linked {
            continue;
        }
        let err = kmssh_core::open(&sample_uri(known.scheme))
            .await
            .expect_err("not linked");
        assert_eq!(
            err.kind(),
            ErrorKind::BackendNotCompiled,
            "{}",
            known.scheme
        );
        assert!(
            err.message()
                .contains(&format!("enable Cargo feature `{}`", known.name)),
            "{err}"
        );
    }
    let key = kmssh_core::open(&sample_uri("local"))
        .await
        .expect("local is linked");
    assert_eq!(key.algorithm(), kmssh_core::Algorithm::EcdsaP521Sha512);
}

/// Adding a backend is one crate, one line in `KNOWN_BACKENDS` and one fixture: this
/// test names whatever else is missing.
#[test]
fn every_list_of_backends_agrees_with_known_backends() {
    let workspace = repository_file("Cargo.toml");
    let cli = repository_file("cli/Cargo.toml");
    let conformance = repository_file("conformance/Cargo.toml");
    let architecture = repository_file("docs/ARCHITECTURE.md");
    let readme = repository_file("README.md");
    for known in KNOWN_BACKENDS {
        let folder = known.package.trim_start_matches("kmssh-");
        assert!(
            workspace.contains(&format!("\"{folder}\"")),
            "Cargo.toml: workspace member {folder} for {}",
            known.scheme
        );
        let feature = format!("{} = [\"dep:{}\"", known.name, known.package);
        assert!(
            cli.contains(&feature),
            "cli/Cargo.toml: feature `{feature}…]`"
        );
        assert!(
            conformance.contains(&format!("{} = [", known.name))
                && conformance.contains(&format!("dep:{}", known.package)),
            "conformance/Cargo.toml: feature `{}` with dep:{}",
            known.name,
            known.package
        );
        assert!(
            conformance.contains(&format!("name = \"{}\"", known.name)),
            "conformance/Cargo.toml: test target `{}`",
            known.name
        );
        let target = format!("conformance/tests/{}.rs", known.name);
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(&target)
                .exists(),
            "{target}: the backend's fixture line"
        );
        for (name, text) in [
            ("docs/ARCHITECTURE.md", &architecture),
            ("README.md", &readme),
        ] {
            assert!(
                text.contains(&format!("`{}:", known.scheme)) && text.contains(known.package),
                "{name}: names `{}:` and {}",
                known.scheme,
                known.package
            );
        }
    }
}
