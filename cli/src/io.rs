//! Files and keys for the commands: bounded reads, atomic writes, and opening a key URI
//! (creating a `local:` key file first with `--create`).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use kmssh_core::{FileWrite, InputFiles, KeyUri, KmsKey, Options};

use crate::args::KeyArgs;
use crate::exit::{Class, Failure};

/// The most any input file is read: public keys, certificates, requests and CA
/// certificates are far smaller; anything bigger is not one of them.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Reads a file (or stdin for `-`), refusing more than [`MAX_INPUT_BYTES`], whatever
/// size the file claims (devices claim none).
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    read_bounded(path, MAX_INPUT_BYTES)
}

/// As [`read_input`], with another limit (a KRL may be larger than a key).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, Failure> {
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
        std::io::stdin().take(limit + 1).read_to_end(&mut buffer)
    } else {
        std::fs::File::open(path)
            .map_err(failed)?
            .take(limit + 1)
            .read_to_end(&mut buffer)
    };
    read.map_err(failed)?;
    if buffer.len() as u64 > limit {
        return Err(Failure::input(format!(
            "{}: larger than {} KiB, too large for this input",
            name(),
            limit / 1024
        )));
    }
    Ok(buffer)
}

/// Reads a text input.
pub fn read_text(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read_input(path)?)
        .map_err(|_| Failure::input(format!("{}: not text", path.display())))
}

/// The refusal for an output that exists when `--force` was not given.
pub fn exists_without_force(path: &Path) -> Failure {
    Failure::input(format!(
        "{} exists: use --force to overwrite",
        path.display()
    ))
}

/// Writes `bytes` to `path`, or to stdout without one. A file is written whole or not
/// at all, mode 0644, never through a symlink at the path ([`FileWrite`]); without
/// `replace` anything already there is refused. Not synced: certificates are public and
/// re-issuable (ssh-keygen does not sync them either).
pub fn write_output(path: Option<&Path>, bytes: &[u8], replace: bool) -> Result<(), Failure> {
    let Some(path) = path else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::new(Class::Output, format!("stdout: {e}")));
    };
    let public = FileWrite {
        mode: 0o644,
        replace,
        sync: false,
    };
    public.write(path, bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists_without_force(path)
        } else {
            Failure::new(Class::Output, format!("{}: {e}", path.display()))
        }
    })
}

/// Refuses to write `output` when it is one of the command's `inputs` (the same file by
/// device and inode, through any link or spelling; or the same name, for an input still
/// to be created: [`InputFiles`]), `--force` or not: an output must never destroy what
/// the command reads. `-` (stdin) is no file.
pub fn refuse_output_over_inputs(output: &Path, inputs: &[&Path]) -> Result<(), Failure> {
    refuse_output_over(output, &InputFiles::new(inputs.iter().copied()))
}

/// As [`refuse_output_over_inputs`], with the inputs looked up once (a batch).
pub fn refuse_output_over(output: &Path, inputs: &InputFiles) -> Result<(), Failure> {
    match inputs.clobbered_by(output) {
        Some(input) => Err(Failure::input(format!(
            "{}: refusing to write there: it is the input {}, even with --force",
            output.display(),
            input.display()
        ))),
        None => Ok(()),
    }
}

/// The file a `local:PATH` key URI reads, or `None` for any other key (or a bad URI,
/// which opening reports).
#[cfg(feature = "local")]
pub fn local_key_file(uri: &str) -> Option<std::path::PathBuf> {
    let uri = KeyUri::parse(uri).ok()?;
    if uri.scheme() != kmssh_backend_local::SCHEME {
        return None;
    }
    match kmssh_backend_local::parse_uri(&uri, kmssh_backend_local::LocalOptions::default()) {
        Ok((kmssh_backend_local::LocalLocation::File(path), _)) => Some(path),
        _ => None,
    }
}

/// The file a `local:PATH` key URI reads: none without the local backend.
#[cfg(not(feature = "local"))]
pub fn local_key_file(_uri: &str) -> Option<std::path::PathBuf> {
    None
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
    // A size or curve the type does not take is the command line's fault: exit 3.
    let spec = key
        .spec()
        .map_err(|e| Failure::input(format!("--create: {}", e.message())))?;
    kmssh_backend_local::create_if_missing(uri, spec)?;
    Ok(())
}

#[cfg(not(feature = "local"))]
fn create_local_key(_uri: &KeyUri, _key: &KeyArgs) -> Result<(), Failure> {
    Err(Failure::input(
        "--create makes local:PATH keys: this build has no local backend (Cargo feature `local`)",
    ))
}
