//! What a backend's test target provides: one [`Fixture`], which makes keys of each kind
//! ([`KeySpec`]: curve, RSA size, Ed25519) the backend offers and says what else it can do ([`Capabilities`]). The shared cases
//! take their keys from it through [`key_for`] and [`faulty_key_for`], which skip (with a
//! `skipped: …` line) what the fixture cannot provide.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use kmssh_core::{KNOWN_BACKENDS, KeySpec, KmsKey, KnownBackend, Options};

use crate::faults::FaultHandle;

/// What a fixture can do besides opening keys of its kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// It runs against an emulator (or in process): it can create keys of any state or
    /// kind. False against a real cloud, where only the listed keys exist.
    pub emulated: bool,
    /// It can inject faults ([`Fixture::faulty_key`]).
    pub faults: bool,
    /// It counts the calls each key makes ([`FaultHandle::count`]).
    pub counts_calls: bool,
}

/// One of [`Capabilities`], for cases that need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// [`Capabilities::emulated`].
    Emulated,
    /// [`Capabilities::faults`].
    Faults,
    /// [`Capabilities::counts_calls`].
    CountsCalls,
}

impl Capabilities {
    /// Whether `capability` is there.
    #[must_use]
    pub fn has(self, capability: Capability) -> bool {
        match capability {
            Capability::Emulated => self.emulated,
            Capability::Faults => self.faults,
            Capability::CountsCalls => self.counts_calls,
        }
    }
}

/// How a backend's test target gets keys. One per backend (or per variant of it, such as
/// the local backend's signing engines); `name` is the backend's name in
/// [`KNOWN_BACKENDS`].
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// The backend's name in [`KNOWN_BACKENDS`] (`aws`, `gcp`…).
    fn name(&self) -> &'static str;

    /// The kinds of key the backend offers.
    fn key_specs(&self) -> &'static [KeySpec];

    /// What it can do besides opening keys.
    fn capabilities(&self) -> Capabilities;

    /// A key of kind `spec` the case may use as its own, opened afresh: a new one or one
    /// made per kind at start where keys can be made (no case changes a key's state),
    /// else one of the listed real keys; `None` skips the case (no listed key of that
    /// kind).
    async fn key(&self, spec: KeySpec) -> Option<Arc<dyn KmsKey>>;

    /// A fresh key of kind `spec` whose calls go through the fault layer, opened with
    /// [`crate::faults::FAULT_CALL_TIMEOUT`] and
    /// [`fault_retry_policy`](crate::faults::fault_retry_policy); `None` without the
    /// [`faults`](Capabilities::faults) capability.
    async fn faulty_key(&self, spec: KeySpec) -> Option<FaultyKey> {
        let _ = spec;
        None
    }

    /// How many signatures the round-trip case makes with a key of kind `spec`
    /// ([`ROUND_TRIPS`](crate::cases::ROUND_TRIPS) unless the backend is too slow for
    /// that many in a test run).
    fn round_trips(&self, spec: KeySpec) -> usize {
        let _ = spec;
        crate::cases::ROUND_TRIPS
    }

    /// What another process (ssh loading the PKCS#11 module) needs in its environment
    /// to open this fixture's keys by URI: the emulator's endpoint and test credentials,
    /// or nothing against a real cloud (the environment is inherited). `None` when the
    /// keys exist only in this process (ephemeral local keys).
    fn child_environment(&self) -> Option<Vec<(String, String)>> {
        None
    }
}

/// A key behind the fault layer: its handle queues faults and counts calls.
pub struct FaultyKey {
    /// The opened key.
    pub key: Arc<dyn KmsKey>,
    /// Its faults and counters.
    pub faults: FaultHandle,
    /// The URI it was opened from.
    pub uri: String,
    /// The options it was opened with (through the same fault layer).
    pub options: Options,
    /// Whatever must live as long as the key (a proxy).
    pub guard: Option<Box<dyn Any + Send + Sync>>,
    /// What another process needs in its environment to reach the key through the same
    /// fault layer (see [`Fixture::child_environment`]).
    pub child_environment: Vec<(String, String)>,
}

impl std::fmt::Debug for FaultyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyKey")
            .field("uri", &self.uri)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl FaultyKey {
    /// Opens the same key again, through the same fault layer and counters.
    ///
    /// # Errors
    /// As the backend's open.
    pub async fn reopen(&self) -> kmssh_core::Result<Arc<dyn KmsKey>> {
        kmssh_core::open_with(&self.uri, &self.options).await
    }

    /// Opens the same key again with other options (a variation of [`FaultyKey::options`]).
    ///
    /// # Errors
    /// As the backend's open.
    pub async fn reopen_with(&self, options: &Options) -> kmssh_core::Result<Arc<dyn KmsKey>> {
        kmssh_core::open_with(&self.uri, options).await
    }
}

/// The backend named `name` in core's list.
///
/// # Panics
/// If no backend has that name.
#[must_use]
pub fn known(name: &str) -> &'static KnownBackend {
    KNOWN_BACKENDS
        .iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not in kmssh_core::KNOWN_BACKENDS"))
}

/// The real keys listed for the backend named `name` (in the variable core's list names
/// for it), if any: the fixture then runs against the real service.
#[must_use]
pub fn real_keys(name: &str) -> Option<Vec<String>> {
    known(name).real_keys_env.and_then(crate::env_list)
}

/// The capabilities of a cloud fixture: everything against its emulator, nothing
/// against the real service.
#[must_use]
pub fn cloud_capabilities(name: &str) -> Capabilities {
    let emulated = real_keys(name).is_none();
    Capabilities {
        emulated,
        faults: emulated,
        counts_calls: emulated,
    }
}

/// `fixture` as a trait object (what [`conformance_suite!`](crate::conformance_suite)
/// passes around).
#[must_use]
pub fn as_dyn<F: Fixture>(fixture: &'static F) -> &'static dyn Fixture {
    fixture
}

fn offers(fixture: &dyn Fixture, spec: KeySpec) -> bool {
    let offered = fixture.key_specs().contains(&spec);
    if !offered {
        eprintln!("skipped: {} offers no {spec} keys", fixture.name());
    }
    offered
}

/// A key of kind `spec` from `fixture`, or `None` (with a `skipped:` line) when the
/// fixture does not offer that kind or has no such key.
pub async fn key_for(fixture: &dyn Fixture, spec: KeySpec) -> Option<Arc<dyn KmsKey>> {
    if !offers(fixture, spec) {
        return None;
    }
    let key = fixture.key(spec).await;
    if key.is_none() {
        let listed = known(fixture.name())
            .real_keys_env
            .map(|env| format!(" ({env} lists none)"))
            .unwrap_or_default();
        eprintln!("skipped: {} has no {spec} key{listed}", fixture.name());
    }
    key
}

/// [`Fixture::child_environment`], or `None` with a `skipped:` line.
#[must_use]
pub fn child_environment_for(fixture: &dyn Fixture) -> Option<Vec<(String, String)>> {
    let env = fixture.child_environment();
    if env.is_none() {
        eprintln!(
            "skipped: {} keys exist only in this process, not in another one",
            fixture.name()
        );
    }
    env
}

/// Whether `fixture` has `capability`; says so (`skipped: …`) when it has not.
#[must_use]
pub fn requires(fixture: &dyn Fixture, capability: Capability) -> bool {
    let has = fixture.capabilities().has(capability);
    if !has {
        eprintln!(
            "skipped: {} lacks the {capability:?} capability",
            fixture.name()
        );
    }
    has
}

/// A key behind the fault layer for a case needing `capability`, or `None` (with a
/// `skipped:` line) when the fixture lacks it or does not offer the kind.
pub async fn faulty_key_for(
    fixture: &dyn Fixture,
    spec: KeySpec,
    capability: Capability,
) -> Option<FaultyKey> {
    if !offers(fixture, spec) || !requires(fixture, capability) {
        return None;
    }
    let key = fixture.faulty_key(spec).await;
    assert!(
        key.is_some(),
        "{} claims {capability:?} but made no faulty {spec} key",
        fixture.name()
    );
    key
}

/// Checks what every fixture must get right: its name is a known backend, it offers at
/// least one curve, and fault capabilities come with a fault layer.
///
/// # Panics
/// If one of those does not hold.
pub fn check_fixture(fixture: &dyn Fixture) {
    let known = known(fixture.name());
    assert!(
        !fixture.key_specs().is_empty(),
        "{} offers no kind of key",
        known.name
    );
    let capabilities = fixture.capabilities();
    if capabilities.counts_calls {
        assert!(
            capabilities.faults,
            "{}: counting calls is done by the fault layer",
            known.name
        );
    }
    if known.real_keys_env.is_none() {
        assert!(
            capabilities.emulated,
            "{} has no real-keys mode, so it must make its own keys",
            known.name
        );
    }
}
