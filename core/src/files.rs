//! The one way kmssh writes a file: whole or not at all, with the mode asked for, and
//! never through whatever is planted at the path.
//!
//! The contents go to a temporary file in the target's directory, which is then renamed
//! over the target (`replace`) or linked into place only if nothing is there; either way
//! a symlink at the path is replaced or refused, never followed, and a killed process
//! leaves the old file or the new one, not half of one. The mode is set on the open
//! file (`fchmod`), so it is exactly the one asked for whatever the process's umask.
//!
//! [`same_file`] and [`resolved_output_path`] let a caller refuse an output that is one
//! of its inputs, or two outputs that are one file, before anything is written.

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
        // The umask applied at creation may have removed bits; set exactly what was asked.
        temporary
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(self.mode))?;
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

/// The (device, inode) pairs a path leads to: the path itself and, where it is a
/// symlink, what it points to. A path that does not exist has none.
fn identities(path: &Path) -> Vec<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    [std::fs::symlink_metadata(path), std::fs::metadata(path)]
        .into_iter()
        .filter_map(std::result::Result::ok)
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

/// Whether writing `output` could destroy `input`: both paths lead to the same file
/// (device and inode), comparing each path itself and, where it is a symlink, what it
/// points to. A path that does not exist is no file: `false`.
///
/// Hard links and symlinks between the two count as the same file, so an output that
/// merely names an input another way is refused as well.
#[must_use]
pub fn same_file(output: &Path, input: &Path) -> bool {
    let inputs = identities(input);
    identities(output).iter().any(|id| inputs.contains(id))
}

/// The files a command reads, looked up once, so that each of its outputs is checked
/// against all of them in constant time: a batch of n certificates costs O(n) system
/// calls, not O(n²). An output clobbers an input when it is the same file
/// ([`same_file`]) or the same directory entry ([`resolved_output_path`]), the latter
/// for an input that does not exist yet (a key `--create` will make).
#[derive(Clone, Debug, Default)]
pub struct InputFiles {
    ids: std::collections::HashMap<(u64, u64), std::path::PathBuf>,
    entries: std::collections::HashMap<std::path::PathBuf, std::path::PathBuf>,
}

impl InputFiles {
    /// Remembers `inputs` (`-`, standard input, is no file and is skipped).
    pub fn new<'a>(inputs: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut files = Self::default();
        for input in inputs {
            if input == Path::new("-") {
                continue;
            }
            for id in identities(input) {
                files.ids.entry(id).or_insert_with(|| input.to_path_buf());
            }
            if let Ok(entry) = resolved_output_path(input) {
                files
                    .entries
                    .entry(entry)
                    .or_insert_with(|| input.to_path_buf());
            }
        }
        files
    }

    /// The input that writing `output` would destroy, if any.
    #[must_use]
    pub fn clobbered_by(&self, output: &Path) -> Option<&Path> {
        identities(output)
            .iter()
            .find_map(|id| self.ids.get(id))
            .or_else(|| {
                resolved_output_path(output)
                    .ok()
                    .and_then(|entry| self.entries.get(&entry))
            })
            .map(std::path::PathBuf::as_path)
    }
}

/// The directory entry `path` names, spelled one way: its directory resolved (symlinks,
/// `.` and `..`) and its last component kept as given. Two outputs are the same entry
/// exactly when these are equal, whether or not the file exists yet.
///
/// # Errors
/// The file system's error when the directory cannot be resolved (it does not exist);
/// [`std::io::ErrorKind::InvalidInput`] for a path with no file name (`/`, `..`).
pub fn resolved_output_path(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok(std::fs::canonicalize(dir)?.join(name))
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

    #[test]
    fn the_mode_is_exact_whatever_the_umask_left() {
        // The umask can only remove bits; a mode wider than what the umask allows at
        // creation (here, group write) must still come out exact.
        let dir = tempfile::tempdir().expect("tempdir");
        for mode in [0o600, 0o644, 0o664, 0o666] {
            let path = dir.path().join(format!("f{mode:o}"));
            let write = FileWrite {
                mode,
                replace: false,
                sync: false,
            };
            write.write(&path, b"x").expect("writes");
            let got = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(got & 0o7777, mode, "{mode:o}");
        }
    }

    #[test]
    fn same_file_sees_through_links_and_spellings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key");
        std::fs::write(&key, b"k").expect("write");
        let other = dir.path().join("other");
        std::fs::write(&other, b"o").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&key, &link).expect("symlink");
        let hard = dir.path().join("hard");
        std::fs::hard_link(&key, &hard).expect("hard link");
        let spelled = dir.path().join(".").join("key");
        assert!(same_file(&key, &key));
        assert!(same_file(&spelled, &key));
        assert!(same_file(&link, &key), "output is a link to the input");
        assert!(
            same_file(&key, &link),
            "input is read through a link to the output"
        );
        assert!(same_file(&hard, &key));
        assert!(!same_file(&other, &key));
        assert!(!same_file(&dir.path().join("missing"), &key));
        assert!(!same_file(&key, &dir.path().join("missing")));
    }

    #[test]
    fn resolved_output_paths_compare_spellings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        let a = resolved_output_path(&sub.join("a-cert.pub")).expect("resolves");
        let b = resolved_output_path(&sub.join("..").join("sub").join("./a-cert.pub"))
            .expect("resolves");
        assert_eq!(a, b);
        assert_ne!(
            a,
            resolved_output_path(&sub.join("b-cert.pub")).expect("resolves")
        );
        assert!(resolved_output_path(&dir.path().join("none").join("x")).is_err());
        assert!(resolved_output_path(Path::new("/")).is_err());
    }

    #[test]
    fn input_files_find_an_output_that_is_an_input_by_file_or_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.pub");
        std::fs::write(&a, b"key").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&a, &link).expect("symlink");
        let missing = dir.path().join("ca_key");
        let inputs = InputFiles::new([a.as_path(), missing.as_path(), Path::new("-")]);
        assert_eq!(inputs.clobbered_by(&link), Some(a.as_path()));
        assert_eq!(
            inputs.clobbered_by(&dir.path().join("./ca_key")),
            Some(missing.as_path())
        );
        assert_eq!(inputs.clobbered_by(&missing), Some(missing.as_path()));
        assert_eq!(inputs.clobbered_by(&dir.path().join("a-cert.pub")), None);
    }
}
