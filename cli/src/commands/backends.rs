//! `kmssh backends`: the backends compiled into this binary.

use crate::exit::Failure;
use crate::io::write_output;

/// Lists each linked backend's scheme and description.
pub fn backends() -> Result<(), Failure> {
    let text: String = kmssh_core::backends()
        .iter()
        .map(|b| format!("{:<10} {}\n", format!("{}:", b.scheme), b.description))
        .collect();
    write_output(None, text.as_bytes(), false)
}
