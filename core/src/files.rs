//! The one way kmssh writes a file: whole or not at all, with the mode asked for, and
//! never through whatever is planted at the path.
//!
//! The contents go to a temporary file in the target's directory, which is then renamed
//! over the target (`replace`) or linked into place only if nothing is there; either way
//! a symlink at the path is replaced or refused, never followed, and a killed process
//! leaves the old file or the new one, not half of one.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// How [`FileWrite::write`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileWrite {
    /// The new file's mode (`0o600` for private keys, `0o644` for certificates).
    pub mode: u32,
    /// Replace what is at the path; otherwise anything there (a dangling symlink
    /// included) is refused with [`std::io::ErrorKind::AlreadyExists`].
    pub replace: bool,
    /// Flush the contents to disk before they take the path's name (private keys, which
    /// cannot be made again; certificates can be re-issued).
    pub sync: bool,
}

impl FileWrite {
    /// Writes `contents` to `path` as described on [`FileWrite`].
    ///
    /// # Errors
    /// The file system's errors; [`std::io::ErrorKind::AlreadyExists`] when `replace` is
    /// off and the path is taken. The temporary file is removed on every error.
    pub fn write(self, path: &Path, contents: &[u8]) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temporary = tempfile::Builder::new()
            .prefix(".kmssh-")
            .permissions(std::fs::Permissions::from_mode(self.mode))
            .tempfile_in(dir)?;
        temporary.write_all(contents)?;
        if self.sync {
            temporary.as_file().sync_all()?;
        }
        let placed = if self.replace {
            temporary.persist(path).map(drop)
        } else {
            temporary.persist_noclobber(path).map(drop)
        };
        placed.map_err(|e| e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_with_their_mode_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        let new = FileWrite {
            mode: 0o600,
            replace: false,
            sync: true,
        };
        new.write(&path, b"one").expect("writes");
        assert_eq!(std::fs::read(&path).expect("read"), b"one");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = new.write(&path, b"two").expect_err("taken");
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"one");

        let victim = dir.path().join("victim");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        let err = new.write(&link, b"x").expect_err("link refused");
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        let replace = FileWrite {
            mode: 0o644,
            replace: true,
            sync: false,
        };
        replace.write(&link, b"three").expect("replaces the link");
        assert!(!victim.exists(), "nothing written through the link");
        assert!(!std::fs::symlink_metadata(&link).expect("meta").is_symlink());
        assert_eq!(std::fs::read(&link).expect("read"), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(".kmssh-")), "{names:?}");
    }
}
