//! `kmssh serve`: the signing service, from its configuration file, until SIGTERM or SIGINT.

use std::io::Write as _;
use std::path::Path;

use kmssh_server::{Config, ServeOptions, Server};
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::{Class, Failure};

/// Loads the configuration, creates missing `create = "…"` local keys, binds, prints
/// `kmssh serve: listening on ADDR` on stderr and serves until SIGTERM or SIGINT.
pub async fn serve(config_path: &Path, insecure_loopback: bool) -> Result<(), Failure> {
    // Info-level logs for the service (a second init, after --verbose's, is refused: kept).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .try_init();
    // Handlers first: a signal arriving while the service starts stops it cleanly,
    // rather than killing the process with the default action.
    let signal_failed = |e: std::io::Error| {
        Failure::new(Class::Other, format!("cannot handle SIGTERM/SIGINT: {e}"))
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_failed)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_failed)?;

    let config = Config::load(config_path)?;
    create_keys(&config)?;
    let options = ServeOptions { insecure_loopback };
    let bound = Server::from_config(config, &options).await?.bind().await?;
    let address = bound.local_addr();
    {
        let mut stderr = std::io::stderr().lock();
        // Tests and scripts wait for this exact line; stderr gone is no reason to stop.
        let _ = writeln!(stderr, "kmssh serve: listening on {address}");
        let _ = stderr.flush();
    }
    tracing::info!(%address, "serving");
    bound
        .run_until(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!("{name} received");
        })
        .await?;
    Ok(())
}

/// Creates each `local:` key configured with `create = "ecdsa" | "rsa" | "ed25519"` that
/// does not exist yet, with `kmssh sign --create --type`'s defaults (P-256, RSA-3072).
#[cfg(feature = "local")]
fn create_keys(config: &Config) -> Result<(), Failure> {
    use kmssh_core::{KeyFamily, KeySpec, KeyUri};
    for (name, key) in &config.keys {
        let key = key.get_ref();
        let Some(kind) = key.create() else {
            continue;
        };
        let family = match kind {
            "ecdsa" => KeyFamily::Ecdsa,
            "rsa" => KeyFamily::Rsa,
            "ed25519" => KeyFamily::Ed25519,
            other => {
                return Err(Failure::input(format!(
                    "keys.{name}.create: `{other}`: expected ecdsa, rsa or ed25519"
                )));
            }
        };
        let about = |e: kmssh_core::Error| Failure::from(e).about(format!("key `{name}`"));
        let spec = KeySpec::new(family, None, None).map_err(about)?;
        let resolved = config.key_uri(name).unwrap_or_default();
        let uri = KeyUri::parse(&resolved).map_err(about)?;
        if kmssh_backend_local::create_if_missing(&uri, spec).map_err(about)? {
            tracing::info!(key = %name, uri = %resolved, "created the key (create = \"{kind}\")");
        }
    }
    Ok(())
}

/// Without the local backend no key can be created.
#[cfg(not(feature = "local"))]
fn create_keys(config: &Config) -> Result<(), Failure> {
    match config
        .keys
        .iter()
        .find(|(_, key)| key.get_ref().create().is_some())
    {
        Some((name, _)) => Err(Failure::input(format!(
            "keys.{name}.create: this build has no local backend (Cargo feature `local`)"
        ))),
        None => Ok(()),
    }
}
