//! Options for keys opened through the registry ([`open_with`](crate::open_with)).
//!
//! The registry cannot know each backend's options type, so [`Options`] holds at most one
//! value of each type: a program puts a backend's options struct in
//! (`Options::new().with(AwsKmsOptions { … })`), and the backend takes it out when it opens
//! a key of its scheme. A backend given nothing reads the provider's standard environment
//! ([`BackendOptions::from_env`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::Result;

/// Options for [`open_with`](crate::open_with): per-backend option structs, and hints
/// that any backend may use.
#[derive(Clone, Default)]
pub struct Options {
    entries: Vec<Arc<dyn Any + Send + Sync>>,
    expected_signatures: Option<u64>,
}

impl Options {
    /// No options: every backend reads its environment.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend's options struct, replacing one of the same type.
    #[must_use]
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.entries.retain(|entry| !entry.is::<T>());
        self.entries.push(Arc::new(value));
        self
    }

    /// The options struct of type `T`, if one was given.
    #[must_use]
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.entries
            .iter()
            .find_map(|entry| entry.downcast_ref::<T>())
    }

    /// Says how many signatures the caller expects to make with the key, so a backend can
    /// prepare for it (the local backend picks its signing engine by it).
    #[must_use]
    pub fn expecting_signatures(mut self, count: u64) -> Self {
        self.expected_signatures = Some(count);
        self
    }

    /// The expected number of signatures, if the caller said.
    #[must_use]
    pub fn expected_signatures(&self) -> Option<u64> {
        self.expected_signatures
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("entries", &self.entries.len())
            .field("expected_signatures", &self.expected_signatures)
            .finish()
    }
}

/// A backend's options struct, as the registry fills it: from [`Options`] when the
/// program gave one, else from the provider's standard environment.
pub trait BackendOptions: Clone + Send + Sync + 'static {
    /// The options a key opened by URI alone gets: the provider's standard environment
    /// and kmssh's `KMSSH_*` settings for the backend.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a setting that cannot be used.
    fn from_env() -> Result<Self>;

    /// The options for a key opened through the registry with `options`.
    ///
    /// # Errors
    /// As [`BackendOptions::from_env`] when `options` holds none of this type.
    fn from_registry(options: &Options) -> Result<Self> {
        match options.get::<Self>() {
            Some(given) => Ok(given.clone()),
            None => Self::from_env(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Region(&'static str);

    #[test]
    fn one_value_per_type_and_the_last_one_wins() {
        let options = Options::new()
            .with(Region("eu-west-1"))
            .with(7_u32)
            .with(Region("us-east-2"));
        assert_eq!(options.get::<Region>(), Some(&Region("us-east-2")));
        assert_eq!(options.get::<u32>(), Some(&7));
        assert_eq!(options.get::<String>(), None);
        assert_eq!(options.expected_signatures(), None);
        assert_eq!(
            options.expecting_signatures(1000).expected_signatures(),
            Some(1000)
        );
    }
}
