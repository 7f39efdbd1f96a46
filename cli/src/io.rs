//! Files and keys for the commands: bounded reads, atomic writes, and opening a key URI
//! (creating a `local:` key file first with `--create`).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use kmssh_core::{KeyUri, KmsKey, Options};

use crate::args::KeyArgs;
use crate::exit::{Class, Failure};

/// The most any input file is read: public keys, certificates, requests and CA
/// certificates are far smaller; anything bigger is not one of them.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Reads a file (or stdin for `-`), refusing more than [`MAX_INPUT_BYTES`], whatever
/// size the file claims (devices claim none).
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    let name = || {
        if path == Path::new("-") {
            "stdin".to_owned()
        } else {
            path.display().to_string()
        }
    };
    let failed = |e: std::io::Error| Failure::input(format!("{}: {e}", name()));
    let mut buffer = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buffer)
    } else {
        std::fs::File::open(path)
            .map_err(failed)?
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buffer)
    };
    read.map_err(failed)?;
    if buffer.len() as u64 > MAX_INPUT_BYTES {
        return Err(Failure::input(format!(
            "{}: larger than {} KiB, too large for this input",
            name(),
            MAX_INPUT_BYTES / 1024
        )));
    }
    Ok(buffer)
}

/// Reads a text input.
pub fn read_text(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read_input(path)?)
        .map_err(|_| Failure::input(format!("{}: not text", path.display())))
}

/// Writes `bytes` to `path`, or to stdout without one. A file is written whole or not
/// at all (a temporary file beside it, then renamed over it); without `replace` an
/// existing file, or a symlink planted at the path, is refused.
pub fn write_output(path: Option<&Path>, bytes: &[u8], replace: bool) -> Result<(), Failure> {
    let Some(path) = path else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::new(Class::Output, format!("stdout: {e}")));
    };
    let failed =
        |e: std::io::Error| Failure::new(Class::Output, format!("{}: {e}", path.display()));
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".kmssh-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(failed)?;
    // No fsync: the rename makes the write whole-or-nothing for a killed process, and
    // certificates are public and re-issuable (ssh-keygen does not sync them either).
    temporary.write_all(bytes).map_err(failed)?;
    let placed = if replace {
        temporary.persist(path).map(drop)
    } else {
        temporary.persist_noclobber(path).map(drop)
    };
    placed.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::input(format!(
                "{} exists: use --force to overwrite",
                path.display()
            ))
        } else {
            failed(e.error)
        }
    })
}

/// Opens a key URI that will make about `signatures` signatures (a hint the local
/// backend picks its engine by); with `--create`, first makes a missing `local:` key
/// file.
pub async fn open_key(
    uri: &str,
    key: &KeyArgs,
    signatures: usize,
) -> Result<Arc<dyn KmsKey>, Failure> {
    if key.create {
        create_local_key(&KeyUri::parse(uri)?, key)?;
    }
    let options = Options::new().expecting_signatures(signatures as u64);
    Ok(kmssh_core::open_with(uri, &options).await?)
}

#[cfg(feature = "local")]
fn create_local_key(uri: &KeyUri, key: &KeyArgs) -> Result<(), Failure> {
    kmssh_backend_local::create_if_missing(uri, key.curve.algorithm())?;
    Ok(())
}

#[cfg(not(feature = "local"))]
fn create_local_key(_uri: &KeyUri, _key: &KeyArgs) -> Result<(), Failure> {
    Err(Failure::input(
        "--create makes local:PATH keys: this build has no local backend (Cargo feature `local`)",
    ))
}
