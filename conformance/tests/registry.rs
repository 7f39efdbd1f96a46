//! The registry sees exactly the backends this build links, and names the Cargo feature
//! for the ones it does not.

#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
use kmssh_backend_local as _;
use kmssh_core::{ErrorKind, KNOWN_SCHEMES};

/// The schemes this build's features link in.
fn enabled() -> Vec<&'static str> {
    let mut schemes = vec!["local"];
    if cfg!(feature = "gcp") {
        schemes.insert(0, "gcp-kms");
    }
    if cfg!(feature = "azure") {
        schemes.insert(0, "azure-kv");
    }
    if cfg!(feature = "aws") {
        schemes.insert(0, "aws-kms");
    }
    schemes
}

#[test]
fn registry_lists_exactly_the_linked_backends() {
    let schemes: Vec<&str> = kmssh_core::backends().iter().map(|b| b.scheme).collect();
    assert_eq!(schemes, enabled());
    for backend in kmssh_core::backends() {
        assert!(!backend.description.is_empty());
        assert!(KNOWN_SCHEMES.iter().any(|(s, _)| *s == backend.scheme));
    }
}

#[tokio::test]
async fn schemes_not_compiled_in_name_their_feature() {
    let mut missing = Vec::new();
    if !cfg!(feature = "azure") {
        missing.push(("azure-kv:https://v.vault.azure.net/keys/ca", "azure"));
    }
    if !cfg!(feature = "gcp") {
        missing.push((
            "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "gcp",
        ));
    }
    if !cfg!(feature = "aws") {
        missing.push(("aws-kms:alias/ssh-ca", "aws"));
    }
    for (uri, feature) in missing {
        let err = kmssh_core::open(uri).await.expect_err("not linked");
        assert_eq!(err.kind(), ErrorKind::BackendNotCompiled, "{uri}");
        assert!(
            err.message()
                .contains(&format!("enable Cargo feature `{feature}`")),
            "{err}"
        );
    }
    let key = kmssh_core::open("local:ephemeral?curve=p521")
        .await
        .expect("local is linked");
    assert_eq!(key.algorithm(), kmssh_core::Algorithm::EcdsaP521Sha512);
}
