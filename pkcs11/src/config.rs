//! The module's configuration file: which keys the token exposes, under which labels and
//! ids, and how long a signature may take.
//!
//! ```toml
//! timeout = "30s"          # optional, per signing call (ms, s, m, h)
//!
//! [[key]]
//! label = "alice"          # CKA_LABEL of both objects
//! uri = "aws-kms:alias/alice"
//! id = "a1b2"              # optional CKA_ID in hex; default: SHA-256 of the SSH key blob, first 16 bytes
//! ```

use std::io::Read as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "KMSSH_PKCS11_CONFIG";

/// The longest configuration file read: a token of keys fits in far less, and a path
/// pointing at something huge (or endless, `/dev/zero`) must not hold the caller.
pub const MAX_CONFIG_LEN: u64 = 256 * 1024;

/// The per-signature deadline when the file gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest label: OpenSSH reads `CKA_LABEL` into a 256-byte buffer with room for a NUL.
pub const MAX_LABEL_LEN: usize = 255;

/// The longest `CKA_ID`.
pub const MAX_ID_LEN: usize = 64;

/// A configuration that cannot be used, naming the file (and line and key when known).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `KMSSH_PKCS11_CONFIG` nor `HOME` says where the file is.
    #[error("no configuration file: set {CONFIG_ENV} or HOME (for ~/.config/kmssh/pkcs11.toml)")]
    NoPath,
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is too large or not UTF-8.
    #[error("{path}: {message}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file is not valid TOML or does not fit the schema (an unknown key, a missing
    /// one, a value of the wrong type).
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// toml's message, on one line.
        message: String,
    },
    /// A value that parsed but cannot be used.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key it is about (`key[2].label`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// One `[[key]]` table, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConfig {
    /// `CKA_LABEL` of the key's two objects.
    pub label: String,
    /// The kmssh key URI it is opened from.
    pub uri: String,
    /// `CKA_ID`, when the file gives one.
    pub id: Option<Vec<u8>>,
    /// Where the table starts, for messages about the key later (a duplicate default id).
    pub line: usize,
}

/// The whole file, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The deadline of each signing call (and of opening the keys).
    pub timeout: Duration,
    /// The keys, in file order (the token's object order).
    pub keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    key: Vec<Spanned<RawKey>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    label: Spanned<String>,
    uri: Spanned<String>,
    id: Option<Spanned<String>>,
}

/// The file the module reads: `$KMSSH_PKCS11_CONFIG`, else `$HOME/.config/kmssh/pkcs11.toml`.
///
/// # Errors
/// [`ConfigError::NoPath`] when neither variable is set.
pub fn config_path() -> Result<PathBuf, ConfigError> {
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".config/kmssh/pkcs11.toml"))
        .ok_or(ConfigError::NoPath)
}

impl Config {
    /// Reads the file named by [`config_path`].
    ///
    /// # Errors
    /// As [`config_path`] and [`Config::load`].
    pub fn from_environment() -> Result<Self, ConfigError> {
        Self::load(&config_path()?)
    }

    /// Reads and checks `path`, at most [`MAX_CONFIG_LEN`] bytes of it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, and the line and key of the first problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_CONFIG_LEN {
            return Err(ConfigError::Content {
                path: path.to_owned(),
                message: format!("larger than {MAX_CONFIG_LEN} bytes"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Content {
            path: path.to_owned(),
            message: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text`, as read from `path`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.span().map_or(1, |span| line_of(text, span.start)),
            message: one_line(e.message()),
        })?;
        let invalid = |span: Range<usize>, key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            line: line_of(text, span.start),
            key,
            message,
        };
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(value) => parse_duration(value.get_ref())
                .map_err(|m| invalid(value.span(), "timeout".to_owned(), m))?,
        };
        if raw.key.is_empty() {
            return Err(invalid(
                0..0,
                "key".to_owned(),
                "no [[key]] table: the token would hold no key".to_owned(),
            ));
        }
        let mut keys: Vec<KeyConfig> = Vec::with_capacity(raw.key.len());
        for (index, table) in raw.key.iter().enumerate() {
            let name = |field: &str| format!("key[{index}].{field}");
            let key = table.get_ref();
            let label = key.label.get_ref();
            check_label(label).map_err(|m| invalid(key.label.span(), name("label"), m))?;
            if let Some(first) = keys.iter().find(|k| &k.label == label) {
                return Err(invalid(
                    key.label.span(),
                    name("label"),
                    format!(
                        "label `{label}` is already used by the key on line {}",
                        first.line
                    ),
                ));
            }
            let uri = key.uri.get_ref().trim();
            if uri.is_empty() {
                return Err(invalid(
                    key.uri.span(),
                    name("uri"),
                    "empty key URI".to_owned(),
                ));
            }
            let id = match &key.id {
                None => None,
                Some(id) => {
                    let bytes =
                        parse_id(id.get_ref()).map_err(|m| invalid(id.span(), name("id"), m))?;
                    if let Some(first) = keys.iter().find(|k| k.id.as_ref() == Some(&bytes)) {
                        return Err(invalid(
                            id.span(),
                            name("id"),
                            format!(
                                "id `{}` is already used by the key on line {}",
                                id.get_ref(),
                                first.line
                            ),
                        ));
                    }
                    Some(bytes)
                }
            };
            keys.push(KeyConfig {
                label: label.clone(),
                uri: uri.to_owned(),
                id,
                line: line_of(text, table.span().start),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            timeout,
            keys,
        })
    }
}

/// A label is shown by ssh and pkcs11-tool, and read by OpenSSH into a fixed buffer.
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label".to_owned());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label is {} bytes; at most {MAX_LABEL_LEN}",
            label.len()
        ));
    }
    if label.chars().any(char::is_control) {
        return Err("label has a control character".to_owned());
    }
    Ok(())
}

/// Hex, with optional `:` separators (`a1:b2` as pkcs11-tool prints ids).
fn parse_id(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(format!(
            "`{text}` is not an even, non-empty number of hex digits"
        ));
    }
    if digits.len() / 2 > MAX_ID_LEN {
        return Err(format!(
            "id is {} bytes; at most {MAX_ID_LEN}",
            digits.len() / 2
        ));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hex = |b: u8| char::from(b).to_digit(16);
            match (hex(pair[0]), hex(pair[1])) {
                // Each digit is below 16, so the byte fits.
                (Some(hi), Some(lo)) => Ok(u8::try_from(hi * 16 + lo).unwrap_or(0)),
                _ => Err(format!("`{text}` is not hex")),
            }
        })
        .collect()
}

/// `500ms`, `30s`, `2m`, `1h`; positive.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s or 500ms"))?;
    let unit = unit.trim();
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if duration.is_zero() {
        return Err("timeout must be positive".to_owned());
    }
    Ok(duration)
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/p.toml"))
    }

    /// A full file parses; ids take colons; the default timeout is 30 s.
    #[test]
    fn parses_keys_in_order() {
        let config = parse(
            "[[key]]\nlabel = \"a\"\nuri = \"local:/k1\"\nid = \"0A:ff\"\n\n[[key]]\nlabel = \"b\"\nuri = \"local:/k2\"\n",
        )
        .expect("valid");
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(config.keys.len(), 2);
        assert_eq!(config.keys[0].id, Some(vec![0x0a, 0xff]));
        assert_eq!(config.keys[1].label, "b");
        assert_eq!(config.keys[1].line, 6);
        assert_eq!(
            parse("timeout = \"1500ms\"\n[[key]]\nlabel = \"a\"\nuri = \"x\"\n")
                .expect("valid")
                .timeout,
            Duration::from_millis(1500)
        );
    }

    /// Each refusal names the file, the line and the key.
    #[test]
    fn refusals_name_file_line_and_key() {
        let cases = [
            (
                "[[key]]\nlabel = \"a\"\nuri = \"local:/k\"\ncolour = 1\n",
                "/etc/p.toml:4: unknown field `colour`, expected one of `label`, `uri`, `id`",
            ),
            (
                "[[key]]\nlabel = \"a\"\n",
                "/etc/p.toml:1: missing field `uri`",
            ),
            (
                "timeout = 5\n",
                "/etc/p.toml:1: invalid type: integer `5`, expected a string",
            ),
            (
                "[[key]]\nlabel = \"a\"\nuri = \"local:/k\"\n[[key]]\nlabel = \"a\"\nuri = \"local:/j\"\n",
                "/etc/p.toml:5: key[1].label: label `a` is already used by the key on line 1",
            ),
            (
                "[[key]]\nlabel = \"a\"\nuri = \"x\"\nid = \"01\"\n[[key]]\nlabel = \"b\"\nuri = \"y\"\nid = \"01\"\n",
                "/etc/p.toml:8: key[1].id: id `01` is already used by the key on line 1",
            ),
            (
                "[[key]]\nlabel = \"a\"\nuri = \"x\"\nid = \"0g\"\n",
                "/etc/p.toml:4: key[0].id: `0g` is not hex",
            ),
            (
                "timeout = \"5 parsecs\"\n",
                "/etc/p.toml:1: timeout: `5 parsecs`: unknown unit `parsecs` (ms, s, m, h)",
            ),
            (
                "# nothing\n",
                "/etc/p.toml:1: key: no [[key]] table: the token would hold no key",
            ),
            (
                "[[key]]\nlabel = \"\"\nuri = \"x\"\n",
                "/etc/p.toml:2: key[0].label: empty label",
            ),
            (
                "[[key]]\nlabel = \"a\"\nuri = \" \"\n",
                "/etc/p.toml:3: key[0].uri: empty key URI",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).expect_err(text).to_string();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
            assert!(!got.contains('\n'), "one line: {got:?}");
        }
    }

    /// A file over the limit is refused without being read whole.
    #[test]
    fn size_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.toml");
        let padding = "#".repeat(usize::try_from(MAX_CONFIG_LEN).unwrap_or(0) + 10);
        std::fs::write(&path, padding).expect("write");
        let err = Config::load(&path).expect_err("too big").to_string();
        assert!(err.ends_with("larger than 262144 bytes"), "{err}");
        let missing = Config::load(&dir.path().join("none.toml")).expect_err("missing");
        assert!(
            missing.to_string().contains("none.toml: No such file"),
            "{missing}"
        );
    }
}
