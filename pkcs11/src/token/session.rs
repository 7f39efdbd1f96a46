//! One session's state: its flags, an object search and a signing operation.

use cryptoki_sys::{CK_FLAGS, CK_OBJECT_HANDLE, CKF_RW_SESSION};

use super::mechanism::SignInput;
use super::objects::ObjectId;

/// An object search between `C_FindObjectsInit` and `C_FindObjectsFinal`.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// Every match, found at `C_FindObjectsInit` (the token's objects never change).
    pub matches: Vec<CK_OBJECT_HANDLE>,
    /// How many have been handed out.
    pub next: usize,
}

impl Search {
    /// Hands out up to `max` more handles.
    pub fn take(&mut self, max: usize) -> &[CK_OBJECT_HANDLE] {
        let start = self.next.min(self.matches.len());
        let end = start.saturating_add(max).min(self.matches.len());
        self.next = end;
        &self.matches[start..end]
    }
}

/// A signing operation between `C_SignInit` and the call that ends it.
#[derive(Clone, Debug)]
pub struct Signing {
    /// The private key object.
    pub object: ObjectId,
    /// The input collected so far.
    pub input: SignInput,
    /// Whether `C_SignUpdate` was called (then only `C_SignFinal` may end it).
    pub multipart: bool,
}

/// A session.
#[derive(Clone, Debug)]
pub struct Session {
    flags: CK_FLAGS,
    /// The active search, if any.
    pub search: Option<Search>,
    /// The active signing operation, if any.
    pub signing: Option<Signing>,
}

impl Session {
    /// A session opened with `flags` (`CKF_SERIAL_SESSION`, maybe `CKF_RW_SESSION`).
    #[must_use]
    pub fn new(flags: CK_FLAGS) -> Self {
        Self {
            flags,
            search: None,
            signing: None,
        }
    }

    /// The flags it was opened with.
    #[must_use]
    pub fn flags(&self) -> CK_FLAGS {
        self.flags
    }

    /// Whether it is read-write.
    #[must_use]
    pub fn is_read_write(&self) -> bool {
        self.flags & CKF_RW_SESSION != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A search hands out its matches in order, then nothing.
    #[test]
    fn search_takes_in_order() {
        let mut search = Search {
            matches: vec![1, 2, 3],
            next: 0,
        };
        assert_eq!(search.take(2), &[1, 2]);
        assert_eq!(search.take(2), &[3]);
        assert!(search.take(2).is_empty());
        assert!(search.take(usize::MAX).is_empty());
    }
}
