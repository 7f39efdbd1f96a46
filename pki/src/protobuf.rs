//! A strict protobuf wire walk: refuses what `prost` silently accepts.
//!
//! A signing request is a security decision; a field the requester set and the decoder
//! skipped could widen what gets signed. Before a message is decoded it is walked against
//! its layout: an unknown field number, a field with the wrong wire type, a singular field
//! given twice, a repeated field over its bound, or a length running past the end is an
//! error naming the field. Nested messages are walked too when their layout is given.

use std::fmt;

/// The two wire types the messages kmssh reads use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    /// Wire type 0: integers, booleans, enums.
    Varint,
    /// Wire type 2: strings, bytes, nested messages, packed repeated fields.
    Len,
}

impl WireType {
    fn number(self) -> u64 {
        match self {
            Self::Varint => 0,
            Self::Len => 2,
        }
    }
}

/// One field of a message layout.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    number: u64,
    name: &'static str,
    wire: WireType,
    max: usize,
    nested: Option<&'static [FieldSpec]>,
}

/// A field: its number, name (for errors), wire type, how many times it may appear (1
/// for a singular field) and, for a nested message, its layout.
#[must_use]
pub const fn field(
    number: u64,
    name: &'static str,
    wire: WireType,
    max: usize,
    nested: Option<&'static [FieldSpec]>,
) -> FieldSpec {
    FieldSpec {
        number,
        name,
        wire,
        max,
        nested,
    }
}

/// Why a message does not follow its layout: the field path and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn varint(buf: &mut &[u8], at: &str) -> Result<u64, WireError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf
            .split_first()
            .ok_or_else(|| WireError(format!("{at}: truncated varint")))?;
        *buf = rest;
        if i == 9 && byte > 1 {
            break;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError(format!("{at}: varint longer than 64 bits")))
}

/// Walks `bytes` as a message laid out as `layout`; `path` names it in errors.
///
/// # Errors
/// [`WireError`] naming the first field that breaks the layout.
pub fn check_message(mut bytes: &[u8], layout: &[FieldSpec], path: &str) -> Result<(), WireError> {
    let mut counts = vec![0usize; layout.len()];
    while !bytes.is_empty() {
        let key = varint(&mut bytes, path)?;
        let number = key >> 3;
        let wire = key & 7;
        let (index, spec) = layout
            .iter()
            .enumerate()
            .find(|(_, s)| s.number == number)
            .ok_or_else(|| {
                WireError(format!(
                    "{path}: unknown field number {number} (wire type {wire}): trailing garbage or a newer format"
                ))
            })?;
        let at = || format!("{path}.{}", spec.name);
        if wire != spec.wire.number() {
            return Err(WireError(format!(
                "{}: wire type {wire}, expected {}",
                at(),
                spec.wire.number()
            )));
        }
        counts[index] += 1;
        if counts[index] > spec.max {
            return Err(WireError(if spec.max == 1 {
                format!("{}: given twice", at())
            } else {
                format!("{}: more than {} entries", at(), spec.max)
            }));
        }
        match spec.wire {
            WireType::Varint => {
                varint(&mut bytes, &at())?;
            }
            WireType::Len => {
                let len = usize::try_from(varint(&mut bytes, &at())?).unwrap_or(usize::MAX);
                if len > bytes.len() {
                    return Err(WireError(format!(
                        "{}: length {len} runs past the end ({} left)",
                        at(),
                        bytes.len()
                    )));
                }
                let (body, rest) = bytes.split_at(len);
                if let Some(nested) = spec.nested {
                    check_message(body, nested, &at())?;
                }
                bytes = rest;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER: &[FieldSpec] = &[field(1, "n", WireType::Varint, 1, None)];
    const OUTER: &[FieldSpec] = &[
        field(1, "a", WireType::Varint, 1, None),
        field(2, "items", WireType::Len, 2, Some(INNER)),
    ];

    #[test]
    fn a_well_formed_message_passes() {
        assert_eq!(
            check_message(&[0x08, 0x01, 0x12, 0x02, 0x08, 0x05], OUTER, "M"),
            Ok(())
        );
        assert_eq!(check_message(&[], OUTER, "M"), Ok(()));
    }

    #[test]
    fn each_breach_names_the_field() {
        let err = |bytes: &[u8]| {
            check_message(bytes, OUTER, "M")
                .expect_err("refused")
                .to_string()
        };
        assert!(err(&[0x18, 0x01]).contains("M: unknown field number 3"));
        assert!(err(&[0x0a, 0x00]).contains("M.a: wire type 2, expected 0"));
        assert!(err(&[0x08, 0x01, 0x08, 0x02]).contains("M.a: given twice"));
        assert!(err(&[0x12, 0x00, 0x12, 0x00, 0x12, 0x00]).contains("M.items: more than 2"));
        assert!(err(&[0x12, 0x05, 0x08]).contains("runs past the end"));
        assert!(err(&[0x12, 0x02, 0x10, 0x01]).contains("M.items: unknown field number 2"));
        assert!(err(&[0x08, 0xff]).contains("truncated varint"));
        assert!(
            err(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .contains("longer than 64 bits")
        );
    }
}
