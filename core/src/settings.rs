//! Backend settings from the environment, for keys opened through the registry (where no
//! options struct can be passed): `KMSSH_*` variables, read the same way by every backend.

use crate::{Error, ErrorKind, Result};

/// A non-empty environment variable.
#[must_use]
pub fn env_setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A yes/no environment variable: `1`/`true`/`yes` or `0`/`false`/`no` (any case);
/// `None` when unset or empty.
///
/// # Errors
/// [`ErrorKind::Config`] naming the variable and its value when it is anything else.
pub fn env_flag(name: &str) -> Result<Option<bool>> {
    let Some(value) = env_setting(name) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(Some(true)),
        "0" | "false" | "no" => Ok(Some(false)),
        _ => Err(Error::new(
            ErrorKind::Config,
            format!("{name}={value:?}: expected true or false"),
        )),
    }
}
