//! Application Default Credentials, found as `google-cloud-auth` finds them, with two
//! things added: the source that was used is named (for messages), and the metadata
//! server is probed, bounded by [`METADATA_PROBE_TIMEOUT`], before it is relied on.
//!
//! `google-cloud-auth` falls back to the metadata server whenever no credentials file
//! is found, without asking whether one is there: on a laptop every token request then
//! fails as a *temporary* network error, which a retry loop would wait out to its
//! deadline. A missing metadata server is a missing credential, said at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use google_cloud_auth::credentials::{Builder, Credentials};
use kmssh_core::{Error, ErrorKind, Result};

/// How long the metadata server has to answer the probe (name lookup, connection and
/// answer together) before kmssh concludes there is none. A metadata server answers
/// in milliseconds; on a laptop the name `metadata.google.internal` usually does not
/// resolve at all.
pub const METADATA_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GOOGLE_APPLICATION_CREDENTIALS`: a credentials file, first in the ADC order.
pub const CREDENTIALS_FILE_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// `GCE_METADATA_HOST`: the metadata server's `host[:port]` (default
/// `metadata.google.internal`), as `google-cloud-auth` reads it.
pub const METADATA_HOST_ENV: &str = "GCE_METADATA_HOST";

/// The metadata server's host when [`METADATA_HOST_ENV`] is unset.
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// Credentials files are a few KiB; anything far larger is not one.
const MAX_CREDENTIALS_FILE: u64 = 1024 * 1024;

/// Credentials and where they came from.
pub(crate) struct Found {
    pub credentials: Credentials,
    /// `GOOGLE_APPLICATION_CREDENTIALS=/path (service_account)`, `the metadata server at
    /// http://…`: shown with authentication and permission errors.
    pub source: String,
}

/// The gcloud well-known file, where `gcloud auth application-default login` writes.
#[cfg(not(windows))]
fn well_known_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".config/gcloud/application_default_credentials.json"))
}

/// The gcloud well-known file, where `gcloud auth application-default login` writes.
#[cfg(windows)]
fn well_known_file() -> Option<PathBuf> {
    std::env::var_os("APPDATA")
        .map(|root| PathBuf::from(root).join("gcloud/application_default_credentials.json"))
}

/// `http://HOST` of the metadata server, as `google-cloud-auth` builds it.
fn metadata_root() -> String {
    let host = std::env::var(METADATA_HOST_ENV).unwrap_or_else(|_| DEFAULT_METADATA_HOST.into());
    format!("http://{host}")
}

/// Finds credentials in the ADC order: [`CREDENTIALS_FILE_ENV`], the gcloud well-known
/// file, the metadata server (probed first).
///
/// # Errors
/// [`ErrorKind::Unauthenticated`] naming every source tried when none gives
/// credentials, or the file that was found and why it cannot be used.
pub(crate) async fn application_default() -> Result<Found> {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os(CREDENTIALS_FILE_ENV) {
        return from_file(&PathBuf::from(path), CREDENTIALS_FILE_ENV);
    }
    tried.push(format!("{CREDENTIALS_FILE_ENV} (not set)"));
    match well_known_file() {
        Some(path) if path.exists() => return from_file(&path, "gcloud's ADC file"),
        Some(path) => tried.push(format!("{} (no such file)", path.display())),
        None => tried.push("gcloud's ADC file (no home directory)".to_owned()),
    }
    let root = metadata_root();
    match probe_metadata_server(&root).await {
        Ok(()) => {
            let credentials = Builder::default().build().map_err(|e| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    format!("cannot use the metadata server at {root}"),
                )
                .with_source(e)
            })?;
            Ok(Found {
                credentials,
                source: format!("the metadata server at {root}"),
            })
        }
        Err(why) => {
            tried.push(format!("the metadata server at {root} ({why})"));
            Err(Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "no Google Cloud credentials found; tried {}. Run `gcloud auth \
                     application-default login`, or set {CREDENTIALS_FILE_ENV} to a \
                     credentials file",
                    tried.join(", ")
                ),
            ))
        }
    }
}

/// Credentials from a file ADC found (`origin` says how it was found).
fn from_file(path: &Path, origin: &str) -> Result<Found> {
    let shown = if origin == CREDENTIALS_FILE_ENV {
        format!("{CREDENTIALS_FILE_ENV}={}", path.display())
    } else {
        format!("{origin} {}", path.display())
    };
    let refuse = |why: String| Error::new(ErrorKind::Unauthenticated, format!("{shown}: {why}"));
    let text = read_small(path).map_err(|e| refuse("cannot read it".into()).with_source(e))?;
    let kind = credentials_type(&text).ok_or_else(|| {
        refuse("not a Google credentials file (JSON with a \"type\" field)".into())
    })?;
    let credentials = Builder::default()
        .build()
        .map_err(|e| refuse(format!("cannot use these {kind} credentials")).with_source(e))?;
    Ok(Found {
        credentials,
        source: format!("{shown} ({kind})"),
    })
}

/// Reads a file of at most [`MAX_CREDENTIALS_FILE`] bytes.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CREDENTIALS_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// The `"type"` of a credentials file (`service_account`, `authorized_user`,
/// `external_account`…); `None` for anything that is not JSON with a string `type`.
fn credentials_type(text: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let kind = json.get("type")?.as_str()?;
    kind.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| kind.to_owned())
}

/// Asks `root` whether it is a metadata server (an answer carrying `Metadata-Flavor:
/// Google`), within [`METADATA_PROBE_TIMEOUT`].
///
/// # Errors
/// Why not, in a few words: no answer in time, the connection or name lookup failed,
/// or something answered that is not a metadata server.
async fn probe_metadata_server(root: &str) -> std::result::Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(METADATA_PROBE_TIMEOUT)
        .build()
        .map_err(|e| innermost(&e))?;
    let request = client
        .get(format!("{root}/"))
        .header("Metadata-Flavor", "Google")
        .send();
    let response = match tokio::time::timeout(METADATA_PROBE_TIMEOUT, request).await {
        Err(_) => return Err(no_answer()),
        Ok(Err(e)) if e.is_timeout() => return Err(no_answer()),
        Ok(Err(e)) => return Err(innermost(&e)),
        Ok(Ok(response)) => response,
    };
    let flavor = response
        .headers()
        .get("Metadata-Flavor")
        .and_then(|v| v.to_str().ok());
    if flavor == Some("Google") {
        Ok(())
    } else {
        Err(format!(
            "HTTP {} without Metadata-Flavor: Google: not a metadata server",
            response.status().as_u16()
        ))
    }
}

fn no_answer() -> String {
    format!("no answer within {METADATA_PROBE_TIMEOUT:?}")
}

/// The deepest cause's text ("Connection refused (os error 111)", "failed to lookup
/// address information: …"): what a user can act on.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_type_is_read_from_the_file() {
        assert_eq!(
            credentials_type(r#"{ "client_id": "x", "type" : "authorized_user" }"#).as_deref(),
            Some("authorized_user")
        );
        assert_eq!(
            credentials_type("{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\"}")
                .as_deref(),
            Some("service_account")
        );
        for bad in ["{}", "{\"type\": 3}", "{\"type\": \"a b\"}", "not json"] {
            assert_eq!(credentials_type(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_no_metadata_server_and_is_said_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let started = std::time::Instant::now();
        let why = probe_metadata_server(&format!("http://{address}"))
            .await
            .expect_err("nothing listens");
        assert!(started.elapsed() < METADATA_PROBE_TIMEOUT, "{why}");
        assert!(why.to_lowercase().contains("refused"), "{why}");
    }
}
