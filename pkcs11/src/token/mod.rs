//! The token, in safe Rust: its keys and objects, sessions, searches, signing operations
//! and the runtime signatures are made on. The C entry points (the private `ffi` module) only move
//! bytes between C pointers and these methods.
//!
//! Locks: the session table and each session have their own mutex, and neither is held
//! while a key signs, so a slow KMS call on one session never holds up another (or a
//! `C_GetAttributeValue` on the same one).

pub mod mechanism;
pub mod objects;
pub mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_FLAGS, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_SESSION_INFO,
    CK_SLOT_ID, CK_STATE, CK_USER_TYPE, CKF_RW_SESSION, CKF_SERIAL_SESSION, CKR_DATA_INVALID,
    CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID,
    CKR_MECHANISM_INVALID, CKR_OBJECT_HANDLE_INVALID, CKR_OPERATION_ACTIVE,
    CKR_OPERATION_NOT_INITIALIZED, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    CKR_SESSION_READ_ONLY_EXISTS, CKR_SESSION_READ_WRITE_SO_EXISTS, CKR_USER_ALREADY_LOGGED_IN,
    CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_USER_TYPE_INVALID,
    CKS_RO_PUBLIC_SESSION, CKS_RO_USER_FUNCTIONS, CKS_RW_PUBLIC_SESSION, CKS_RW_SO_FUNCTIONS,
    CKS_RW_USER_FUNCTIONS, CKU_CONTEXT_SPECIFIC, CKU_SO, CKU_USER,
};
use kmssh_core::{ErrorKind, KmsKey, Signature, SigningInput};

use crate::config::Config;
use mechanism::{Mechanism, Refusal, SignInput, SignRequest};
use objects::{AttributeValue, KeyObjects, ObjectClass, ObjectId};
use session::{Search, Session, Signing};

/// The one slot's id.
pub const SLOT_ID: CK_SLOT_ID = 0;

/// Worker threads of the module's runtime: signing waits on the network, not the CPU.
const WORKER_THREADS: usize = 2;

/// How much longer than the configured timeout a caller waits for the runtime's answer
/// (the runtime enforces the timeout itself; this only bounds a runtime that is stuck).
const WAIT_MARGIN: Duration = Duration::from_secs(2);

/// Writes one line on stderr, prefixed with the module's name, newlines flattened: what a
/// user of `ssh -I` sees when something fails.
pub fn report(message: &str) {
    eprintln!("kmssh-pkcs11: {}", message.replace(['\n', '\r'], " "));
}

/// The return value for a key's failure: one table for every kind (documented in the
/// crate docs).
#[must_use]
pub fn rv_for(kind: ErrorKind) -> CK_RV {
    match kind {
        // The provider failed, was unreachable, slow, or answered with a signature that
        // does not verify: the "device" failed, and the caller may retry later.
        ErrorKind::Throttled
        | ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::BadSignature
        | ErrorKind::NotFound
        | ErrorKind::Unauthenticated => CKR_DEVICE_ERROR,
        // The identity may not sign with the key, or the key is disabled or unusable.
        ErrorKind::PermissionDenied | ErrorKind::InvalidKey => CKR_KEY_FUNCTION_NOT_PERMITTED,
        ErrorKind::UnsupportedAlgorithm => CKR_MECHANISM_INVALID,
        ErrorKind::InvalidInput => CKR_DATA_INVALID,
        ErrorKind::InvalidUri
        | ErrorKind::BackendNotCompiled
        | ErrorKind::Config
        | ErrorKind::Unexpected => CKR_GENERAL_ERROR,
    }
}

/// Why the token could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The runtime could not start (no threads).
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// One key: the opened key and its objects.
#[derive(Debug)]
pub struct TokenKey {
    key: Arc<dyn KmsKey>,
    objects: KeyObjects,
}

impl TokenKey {
    /// A key labelled `label`, with `id` (else the default id).
    #[must_use]
    pub fn new(label: &str, id: Option<Vec<u8>>, key: Arc<dyn KmsKey>) -> Self {
        let objects = KeyObjects::new(label, id, key.public_key().clone(), key.algorithms());
        Self { key, objects }
    }

    /// Its objects.
    #[must_use]
    pub fn objects(&self) -> &KeyObjects {
        &self.objects
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &Arc<dyn KmsKey> {
        &self.key
    }
}

#[derive(Debug, Default)]
struct Sessions {
    open: HashMap<CK_SESSION_HANDLE, Arc<Mutex<Session>>>,
    last_handle: CK_SESSION_HANDLE,
    /// Who is logged in: one state for the whole application, as PKCS#11 has it.
    login: Option<CK_USER_TYPE>,
}

/// What a `C_Sign` or `C_SignFinal` gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignOutput {
    /// The signature's length, for a null buffer (`CKR_OK`, the operation stays active) or
    /// a short one (`CKR_BUFFER_TOO_SMALL`, the operation stays active).
    Length {
        /// The length.
        len: usize,
        /// Whether the caller's buffer was too small (as opposed to absent).
        too_small: bool,
    },
    /// The signature; the operation has ended.
    Signature(Vec<u8>),
}

/// The token: one per initialised module.
#[derive(Debug)]
pub struct Token {
    keys: Vec<TokenKey>,
    timeout: Duration,
    sessions: Mutex<Sessions>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a lock was held is already reported as CKR_GENERAL_ERROR to that
    // caller; the state itself stays consistent (every update is a single assignment).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_runtime() -> Result<tokio::runtime::Runtime, TokenError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("kmssh-pkcs11")
        .enable_all()
        .build()
        .map_err(TokenError::Runtime)
}

impl Token {
    /// Opens every key of `config` at once, each within the configured timeout. A key that
    /// cannot be opened is reported on stderr (`kmssh-pkcs11: <label>: <error>`) and left
    /// out, so the others still serve; so is a key whose `CKA_ID` repeats another's.
    ///
    /// # Errors
    /// [`TokenError`] when the runtime cannot start.
    pub fn open(config: &Config) -> Result<Self, TokenError> {
        let runtime = new_runtime()?;
        let timeout = config.timeout;
        let pending: Vec<_> = config
            .keys
            .iter()
            .map(|k| {
                let uri = k.uri.clone();
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                runtime.spawn(async move {
                    let opened = tokio::time::timeout(timeout, kmssh_core::open(&uri)).await;
                    // The receiver may have given up; nothing to tell then.
                    let _ = tx.send(opened);
                });
                rx
            })
            .collect();
        let deadline = std::time::Instant::now() + timeout + WAIT_MARGIN;
        let mut keys: Vec<TokenKey> = Vec::new();
        for (k, rx) in config.keys.iter().zip(pending) {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let key = match rx.recv_timeout(wait) {
                Ok(Ok(Ok(key))) => key,
                Ok(Ok(Err(e))) => {
                    report(&format!("{}: {e}; left out of the token", k.label));
                    continue;
                }
                Ok(Err(_)) | Err(_) => {
                    report(&format!(
                        "{}: {}: not opened within {timeout:?}; left out of the token",
                        k.label, k.uri
                    ));
                    continue;
                }
            };
            let token_key = TokenKey::new(&k.label, k.id.clone(), key);
            if let Some(other) = keys
                .iter()
                .find(|o| o.objects.id() == token_key.objects.id())
            {
                report(&format!(
                    "{}: its CKA_ID is the same as key `{}`'s (the same key listed twice? give it an `id`); left out of the token",
                    k.label,
                    other.objects.label()
                ));
                continue;
            }
            keys.push(token_key);
        }
        Ok(Self {
            keys,
            timeout,
            sessions: Mutex::default(),
            runtime: Some(runtime),
        })
    }

    /// A token over keys already opened (for Rust users and tests), signing within
    /// `timeout`.
    ///
    /// # Errors
    /// [`TokenError`] when the runtime cannot start.
    pub fn from_keys(keys: Vec<TokenKey>, timeout: Duration) -> Result<Self, TokenError> {
        Ok(Self {
            keys,
            timeout,
            sessions: Mutex::default(),
            runtime: Some(new_runtime()?),
        })
    }

    /// The keys, in configuration order.
    #[must_use]
    pub fn keys(&self) -> &[TokenKey] {
        &self.keys
    }

    /// Open sessions: all, and read-write.
    #[must_use]
    pub fn session_counts(&self) -> (usize, usize) {
        let sessions = lock(&self.sessions);
        let rw = sessions
            .open
            .values()
            .filter(|s| lock(s).is_read_write())
            .count();
        (sessions.open.len(), rw)
    }

    /// Checks that `handle` is an open session.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn check_session(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.session(handle).map(drop)
    }

    fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>, CK_RV> {
        lock(&self.sessions)
            .open
            .get(&handle)
            .cloned()
            .ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    fn object(&self, handle: CK_OBJECT_HANDLE) -> Option<(ObjectId, &TokenKey)> {
        let id = ObjectId::from_handle(handle, self.keys.len())?;
        Some((id, &self.keys[id.key]))
    }

    /// `C_OpenSession`.
    ///
    /// # Errors
    /// `CKR_SESSION_PARALLEL_NOT_SUPPORTED` without `CKF_SERIAL_SESSION`,
    /// `CKR_SESSION_READ_WRITE_SO_EXISTS` for a read-only session while the SO is logged in.
    pub fn open_session(&self, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE, CK_RV> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        let mut sessions = lock(&self.sessions);
        if sessions.login == Some(CKU_SO) && flags & CKF_RW_SESSION == 0 {
            return Err(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        sessions.last_handle += 1;
        let handle = sessions.last_handle;
        sessions
            .open
            .insert(handle, Arc::new(Mutex::new(Session::new(flags))));
        Ok(handle)
    }

    /// `C_CloseSession`; closing the last one logs out, as PKCS#11 has it.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn close_session(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        let mut sessions = lock(&self.sessions);
        sessions
            .open
            .remove(&handle)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        if sessions.open.is_empty() {
            sessions.login = None;
        }
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self) {
        let mut sessions = lock(&self.sessions);
        sessions.open.clear();
        sessions.login = None;
    }

    /// `C_GetSessionInfo`.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn session_info(&self, handle: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO, CK_RV> {
        let session = self.session(handle)?;
        let flags = lock(&session).flags();
        let login = lock(&self.sessions).login;
        let rw = flags & CKF_RW_SESSION != 0;
        let state: CK_STATE = match (rw, login) {
            (false, Some(CKU_USER)) => CKS_RO_USER_FUNCTIONS,
            (false, _) => CKS_RO_PUBLIC_SESSION,
            (true, Some(CKU_USER)) => CKS_RW_USER_FUNCTIONS,
            (true, Some(CKU_SO)) => CKS_RW_SO_FUNCTIONS,
            (true, _) => CKS_RW_PUBLIC_SESSION,
        };
        Ok(CK_SESSION_INFO {
            slotID: SLOT_ID,
            state,
            flags,
            ulDeviceError: 0,
        })
    }

    /// `C_Login`. The token needs no login, so any PIN is accepted (the keys' own
    /// credentials are the provider's), but the states follow PKCS#11 so that clients that
    /// log in anyway (`pkcs11-tool --login`) see what they expect.
    ///
    /// # Errors
    /// `CKR_USER_ALREADY_LOGGED_IN`, `CKR_USER_ANOTHER_ALREADY_LOGGED_IN`,
    /// `CKR_SESSION_READ_ONLY_EXISTS` (SO with a read-only session open),
    /// `CKR_OPERATION_NOT_INITIALIZED` (context-specific, no signing operation: no key here
    /// needs it), `CKR_USER_TYPE_INVALID`, `CKR_SESSION_HANDLE_INVALID`.
    pub fn login(&self, handle: CK_SESSION_HANDLE, user: CK_USER_TYPE) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        if user == CKU_CONTEXT_SPECIFIC {
            return if lock(&session).signing.is_some() {
                Ok(())
            } else {
                Err(CKR_OPERATION_NOT_INITIALIZED)
            };
        }
        if user != CKU_USER && user != CKU_SO {
            return Err(CKR_USER_TYPE_INVALID);
        }
        let mut sessions = lock(&self.sessions);
        match sessions.login {
            Some(current) if current == user => return Err(CKR_USER_ALREADY_LOGGED_IN),
            Some(_) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
            None => {}
        }
        if user == CKU_SO && sessions.open.values().any(|s| !lock(s).is_read_write()) {
            return Err(CKR_SESSION_READ_ONLY_EXISTS);
        }
        sessions.login = Some(user);
        Ok(())
    }

    /// `C_Logout`.
    ///
    /// # Errors
    /// `CKR_USER_NOT_LOGGED_IN`, `CKR_SESSION_HANDLE_INVALID`.
    pub fn logout(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.session(handle)?;
        let mut sessions = lock(&self.sessions);
        sessions
            .login
            .take()
            .map(|_| ())
            .ok_or(CKR_USER_NOT_LOGGED_IN)
    }

    /// `C_FindObjectsInit`: every object whose attributes equal the template's.
    ///
    /// # Errors
    /// `CKR_OPERATION_ACTIVE` while a search is active, `CKR_SESSION_HANDLE_INVALID`.
    pub fn find_init(
        &self,
        handle: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        if session.search.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let mut matches = Vec::new();
        for (index, key) in self.keys.iter().enumerate() {
            for class in [ObjectClass::Public, ObjectClass::Private] {
                if key.objects.matches(class, template) {
                    matches.push(ObjectId { key: index, class }.handle());
                }
            }
        }
        session.search = Some(Search { matches, next: 0 });
        Ok(())
    }

    /// `C_FindObjects`: up to `max` more handles.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED` without a search, `CKR_SESSION_HANDLE_INVALID`.
    pub fn find(
        &self,
        handle: CK_SESSION_HANDLE,
        max: usize,
    ) -> Result<Vec<CK_OBJECT_HANDLE>, CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let search = session
            .search
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        Ok(search.take(max).to_vec())
    }

    /// `C_FindObjectsFinal`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED` without a search, `CKR_SESSION_HANDLE_INVALID`.
    pub fn find_final(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        lock(&session)
            .search
            .take()
            .map(|_| ())
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)
    }

    /// The object a handle names, checked against the session, for `C_GetAttributeValue`
    /// (which then asks [`KeyObjects::attribute`] for each attribute).
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID`.
    pub fn attributes(
        &self,
        handle: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
    ) -> Result<(ObjectClass, &KeyObjects), CK_RV> {
        self.session(handle)?;
        let (id, key) = self.object(object).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        Ok((id.class, &key.objects))
    }

    /// `C_GetObjectSize`: the bytes of the object's attribute values.
    ///
    /// # Errors
    /// As [`Token::attributes`].
    pub fn object_size(
        &self,
        handle: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
    ) -> Result<usize, CK_RV> {
        let (class, objects) = self.attributes(handle, object)?;
        // Every standard attribute number up to the vendor range that this object has.
        Ok((0..0x1000)
            .map(|a| match objects.attribute(class, a) {
                AttributeValue::Bytes(v) => v.len(),
                AttributeValue::Sensitive | AttributeValue::Invalid => 0,
            })
            .sum())
    }

    /// `C_SignInit`.
    ///
    /// # Errors
    /// `CKR_OPERATION_ACTIVE`, `CKR_KEY_HANDLE_INVALID`, `CKR_KEY_FUNCTION_NOT_PERMITTED`
    /// (a public key, or a hash the provider forbids for the key), `CKR_KEY_TYPE_INCONSISTENT`,
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn sign_init(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: Mechanism,
        object: CK_OBJECT_HANDLE,
    ) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        if session.signing.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let (id, key) = self.object(object).ok_or(CKR_KEY_HANDLE_INVALID)?;
        if id.class != ObjectClass::Private {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let public_key = key.objects.public_key();
        mechanism
            .check_key(public_key, key.key.algorithms())
            .map_err(|r| self.refuse(key, &r))?;
        session.signing = Some(Signing {
            object: id,
            input: SignInput::new(mechanism, public_key, key.key.max_message_len()),
            multipart: false,
        });
        Ok(())
    }

    fn refuse(&self, key: &TokenKey, refusal: &Refusal) -> CK_RV {
        report(&format!("{}: {}", key.objects.label(), refusal.reason));
        refusal.rv
    }

    /// `C_Sign`: `capacity` is the caller's buffer length, `None` for a null buffer.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`, `CKR_OPERATION_ACTIVE` (after `C_SignUpdate`), the
    /// input's refusals (`CKR_DATA_LEN_RANGE`, `CKR_DATA_INVALID`…) and the key's failures
    /// through [`rv_for`]. Every error ends the operation.
    pub fn sign(
        &self,
        handle: CK_SESSION_HANDLE,
        data: &[u8],
        capacity: Option<usize>,
    ) -> Result<SignOutput, CK_RV> {
        self.finish_signing(handle, Some(data), capacity)
    }

    /// `C_SignUpdate`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`, `CKR_DATA_LEN_RANGE` (a raw mechanism given more
    /// than it signs; the operation ends), `CKR_SESSION_HANDLE_INVALID`.
    pub fn sign_update(&self, handle: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let signing = session
            .signing
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        signing.multipart = true;
        if let Err(refusal) = signing.input.update(data) {
            let key = &self.keys[signing.object.key];
            session.signing = None;
            return Err(self.refuse(key, &refusal));
        }
        Ok(())
    }

    /// `C_SignFinal`, as [`Token::sign`] without more data.
    ///
    /// # Errors
    /// As [`Token::sign`].
    pub fn sign_final(
        &self,
        handle: CK_SESSION_HANDLE,
        capacity: Option<usize>,
    ) -> Result<SignOutput, CK_RV> {
        self.finish_signing(handle, None, capacity)
    }

    fn finish_signing(
        &self,
        handle: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<SignOutput, CK_RV> {
        let session = self.session(handle)?;
        let (key, mut signing) = {
            let mut session = lock(&session);
            let signing = session
                .signing
                .as_ref()
                .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
            if data.is_some() && signing.multipart {
                // C_Sign cannot end a multi-part operation; it stays for C_SignFinal.
                return Err(CKR_OPERATION_ACTIVE);
            }
            let key = &self.keys[signing.object.key];
            let len = Mechanism::signature_len(key.objects.public_key());
            match capacity {
                None => {
                    return Ok(SignOutput::Length {
                        len,
                        too_small: false,
                    });
                }
                Some(capacity) if capacity < len => {
                    return Ok(SignOutput::Length {
                        len,
                        too_small: true,
                    });
                }
                Some(_) => {}
            }
            // Taken out: whatever happens next ends the operation, and the session's lock
            // is not held while the key signs.
            let signing = session
                .signing
                .take()
                .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
            (key, signing)
        };
        if let Some(data) = data {
            signing
                .input
                .update(data)
                .map_err(|r| self.refuse(key, &r))?;
        }
        let public_key = key.objects.public_key();
        let request = signing
            .input
            .finish(public_key, key.key.algorithms())
            .map_err(|r| self.refuse(key, &r))?;
        let signature = self.sign_with(key, request).map_err(|e| {
            report(&format!("{}: {e}", key.objects.label()));
            rv_for(e.kind())
        })?;
        Ok(SignOutput::Signature(signature_bytes(
            &signature, public_key,
        )))
    }

    /// Signs on the runtime within the timeout, waiting on this thread (not inside the
    /// runtime, so a caller that is itself async code does not deadlock it).
    fn sign_with(
        &self,
        key: &TokenKey,
        request: SignRequest,
    ) -> Result<Signature, kmssh_core::Error> {
        let timeout = self.timeout;
        let timed_out = || {
            kmssh_core::Error::new(
                ErrorKind::Timeout,
                format!("no signature within {timeout:?} (the configured timeout)"),
            )
        };
        if let Some(limit) = key.key.max_message_len()
            && !request.algorithm.is_prehashed()
            && request.payload.len() > limit
        {
            return Err(kmssh_core::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the provider signs messages of at most {limit} bytes; this one is {}",
                    request.payload.len()
                ),
            ));
        }
        let runtime = self.runtime.as_ref().ok_or_else(timed_out)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let signer = Arc::clone(&key.key);
        runtime.spawn(async move {
            let input = if request.algorithm.is_prehashed() {
                SigningInput::Digest(&request.payload)
            } else {
                SigningInput::Message(&request.payload)
            };
            let signed = tokio::time::timeout(timeout, signer.sign(request.algorithm, input)).await;
            // The caller may have stopped waiting.
            let _ = tx.send(signed);
        });
        match rx.recv_timeout(timeout + WAIT_MARGIN) {
            Ok(Ok(signed)) => signed,
            Ok(Err(_)) | Err(_) => Err(timed_out()),
        }
    }
}

/// The bytes PKCS#11 returns: `r‖s` at the curve's width (ECDSA), the modulus-length
/// integer (RSA), `R‖S` (Ed25519).
fn signature_bytes(signature: &Signature, key: &kmssh_core::PublicKey) -> Vec<u8> {
    match signature {
        Signature::Ecdsa(s) => s.to_fixed(),
        Signature::Rsa(s) => {
            // Verified signatures are already modulus-length; pad in case a key is not.
            let len = Mechanism::signature_len(key);
            let bytes = s.as_bytes();
            let mut out = vec![0; len.saturating_sub(bytes.len())];
            out.extend_from_slice(bytes);
            out
        }
        Signature::Ed25519(s) => s.to_bytes().to_vec(),
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // A signature still in flight (its caller gave up) is cut off after a second, so
        // C_Finalize never waits on a KMS.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in the crate docs, kind by kind.
    #[test]
    fn error_kinds_map_as_documented() {
        let table = [
            (ErrorKind::Throttled, CKR_DEVICE_ERROR),
            (ErrorKind::Unavailable, CKR_DEVICE_ERROR),
            (ErrorKind::Timeout, CKR_DEVICE_ERROR),
            (ErrorKind::BadSignature, CKR_DEVICE_ERROR),
            (ErrorKind::NotFound, CKR_DEVICE_ERROR),
            (ErrorKind::Unauthenticated, CKR_DEVICE_ERROR),
            (ErrorKind::PermissionDenied, CKR_KEY_FUNCTION_NOT_PERMITTED),
            (ErrorKind::InvalidKey, CKR_KEY_FUNCTION_NOT_PERMITTED),
            (ErrorKind::UnsupportedAlgorithm, CKR_MECHANISM_INVALID),
            (ErrorKind::InvalidInput, CKR_DATA_INVALID),
            (ErrorKind::InvalidUri, CKR_GENERAL_ERROR),
            (ErrorKind::BackendNotCompiled, CKR_GENERAL_ERROR),
            (ErrorKind::Config, CKR_GENERAL_ERROR),
            (ErrorKind::Unexpected, CKR_GENERAL_ERROR),
        ];
        for (kind, rv) in table {
            assert_eq!(rv_for(kind), rv, "{kind}");
        }
    }
}
