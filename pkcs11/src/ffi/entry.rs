//! The entry points the token implements. Each checks its pointers, then calls the safe
//! token; the order of checks is: initialised, arguments, session, then the rest.

use std::os::raw::c_void;
use std::sync::{Arc, PoisonError};

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_BYTE, CK_C_INITIALIZE_ARGS, CK_EDDSA_PARAMS,
    CK_EFFECTIVELY_INFINITE, CK_FLAGS, CK_INFO, CK_MECHANISM, CK_MECHANISM_INFO, CK_MECHANISM_TYPE,
    CK_NOTIFY, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_SESSION_INFO, CK_SLOT_ID,
    CK_SLOT_INFO, CK_TOKEN_INFO, CK_ULONG, CK_UNAVAILABLE_INFORMATION, CK_USER_TYPE, CK_UTF8CHAR,
    CK_VERSION, CKF_LIBRARY_CANT_CREATE_OS_THREADS, CKF_OS_LOCKING_OK, CKF_RNG,
    CKF_TOKEN_INITIALIZED, CKF_TOKEN_PRESENT, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_SENSITIVE,
    CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL, CKR_CANT_LOCK,
    CKR_CRYPTOKI_ALREADY_INITIALIZED, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_DEVICE_ERROR,
    CKR_GENERAL_ERROR, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
    CKR_NEED_TO_CREATE_THREADS, CKR_RANDOM_SEED_NOT_SUPPORTED, CKR_SLOT_ID_INVALID,
};

use super::{
    Initialized, STATE, guard, input, padded, put, put_list, take_own, token, ulong, usize_of,
};
use crate::config::Config;
use crate::token::mechanism::Mechanism;
use crate::token::objects::AttributeValue;
use crate::token::{SLOT_ID, SignOutput, Token, report};

/// The library's version, from the crate's.
fn library_version() -> CK_VERSION {
    let part = |s: &str| s.parse::<u8>().unwrap_or(0);
    CK_VERSION {
        major: part(env!("CARGO_PKG_VERSION_MAJOR")),
        minor: part(env!("CARGO_PKG_VERSION_MINOR")),
    }
}

fn check_slot(slot: CK_SLOT_ID) -> Result<(), CK_RV> {
    if slot == SLOT_ID {
        Ok(())
    } else {
        Err(CKR_SLOT_ID_INVALID)
    }
}

/// Reads the locking arguments: we lock with OS primitives, so the application's mutex
/// callbacks are never needed, but an application that offers only callbacks (no
/// `CKF_OS_LOCKING_OK`) demands they be used, which we cannot do.
///
/// # Safety
/// `args` must be null or point to a `CK_C_INITIALIZE_ARGS`.
unsafe fn check_initialize_args(args: *const CK_C_INITIALIZE_ARGS) -> Result<(), CK_RV> {
    if args.is_null() {
        return Ok(());
    }
    // SAFETY: non-null, and the caller vouches for the struct.
    let args = unsafe { &*args };
    if !args.pReserved.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let callbacks = [
        args.CreateMutex.is_some(),
        args.DestroyMutex.is_some(),
        args.LockMutex.is_some(),
        args.UnlockMutex.is_some(),
    ];
    let all = callbacks.iter().all(|c| *c);
    if !all && callbacks.iter().any(|c| *c) {
        return Err(CKR_ARGUMENTS_BAD);
    }
    if all && args.flags & CKF_OS_LOCKING_OK == 0 {
        return Err(CKR_CANT_LOCK);
    }
    if args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0 {
        // The runtime that talks to the KMS runs on threads of its own.
        return Err(CKR_NEED_TO_CREATE_THREADS);
    }
    Ok(())
}

/// Reads the configuration and opens every key (see the crate docs).
///
/// # Safety
/// `args` must be null or point to a `CK_C_INITIALIZE_ARGS`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard("C_Initialize", || {
        // SAFETY: the caller's pointer, as PKCS#11 defines it.
        unsafe { check_initialize_args(args.cast_const().cast()) }?;
        let mut state = STATE.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(own) = take_own(&mut state) {
            *state = Some(Initialized {
                token: own,
                pid: std::process::id(),
            });
            return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED);
        }
        let config = Config::from_environment().map_err(|e| {
            report(&e.to_string());
            CKR_GENERAL_ERROR
        })?;
        let token = Token::open(&config).map_err(|e| {
            report(&e.to_string());
            CKR_GENERAL_ERROR
        })?;
        *state = Some(Initialized {
            token: Arc::new(token),
            pid: std::process::id(),
        });
        Ok(())
    })
}

/// Drops the keys, the sessions and the runtime.
///
/// # Safety
/// `reserved` must be null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard("C_Finalize", || {
        if !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let token = take_own(&mut STATE.write().unwrap_or_else(PoisonError::into_inner))
            .ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)?;
        // Dropped outside the lock: stopping the runtime may take a moment.
        drop(token);
        Ok(())
    })
}

/// The library's identity.
///
/// # Safety
/// `info` must be null or valid for a write of `CK_INFO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard("C_GetInfo", || {
        token()?;
        let value = CK_INFO {
            cryptokiVersion: CK_VERSION {
                major: 2,
                minor: 40,
            },
            manufacturerID: padded("kmssh"),
            flags: 0,
            libraryDescription: padded("kmssh KMS keys PKCS#11 module"),
            libraryVersion: library_version(),
        };
        // SAFETY: checked for null by `put`; the caller vouches for the rest.
        unsafe { put(info, value) }
    })
}

/// The one slot, whether or not `token_present` (its token is always there).
///
/// # Safety
/// `count` must be null or valid for reads and writes; `list` null or valid for `*count`
/// slot ids.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(
    _token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetSlotList", || {
        token()?;
        // SAFETY: the caller's pointers, as documented.
        unsafe { put_list(&[SLOT_ID], list, count) }
    })
}

/// The slot's description.
///
/// # Safety
/// `info` must be null or valid for a write of `CK_SLOT_INFO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard("C_GetSlotInfo", || {
        token()?;
        check_slot(slot)?;
        let value = CK_SLOT_INFO {
            slotDescription: padded("kmssh: keys held by a KMS"),
            manufacturerID: padded("kmssh"),
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: library_version(),
            firmwareVersion: library_version(),
        };
        // SAFETY: checked for null by `put`.
        unsafe { put(info, value) }
    })
}

/// The token: initialised, no login required, a random number generator.
///
/// # Safety
/// `info` must be null or valid for a write of `CK_TOKEN_INFO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard("C_GetTokenInfo", || {
        let token = token()?;
        check_slot(slot)?;
        let (sessions, rw_sessions) = token.session_counts();
        let value = CK_TOKEN_INFO {
            label: padded("kmssh"),
            manufacturerID: padded("kmssh"),
            model: padded("KMS keys"),
            serialNumber: padded("0"),
            flags: CKF_TOKEN_INITIALIZED | CKF_RNG,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: ulong(sessions),
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: ulong(rw_sessions),
            ulMaxPinLen: 0,
            ulMinPinLen: 0,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: library_version(),
            firmwareVersion: library_version(),
            // No clock on the token: blank.
            utcTime: padded(""),
        };
        // SAFETY: checked for null by `put`.
        unsafe { put(info, value) }
    })
}

/// The signing mechanisms, two-call convention.
///
/// # Safety
/// As [`C_GetSlotList`], with mechanism types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetMechanismList", || {
        token()?;
        check_slot(slot)?;
        let all: Vec<CK_MECHANISM_TYPE> = Mechanism::ALL.iter().map(|m| m.ck_type()).collect();
        // SAFETY: the caller's pointers, as documented.
        unsafe { put_list(&all, list, count) }
    })
}

/// One mechanism's key sizes and flags.
///
/// # Safety
/// `info` must be null or valid for a write of `CK_MECHANISM_INFO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard("C_GetMechanismInfo", || {
        token()?;
        check_slot(slot)?;
        let mechanism = Mechanism::from_type(mechanism).ok_or(CKR_MECHANISM_INVALID)?;
        // SAFETY: checked for null by `put`.
        unsafe { put(info, mechanism.info()) }
    })
}

/// Opens a serial session, read-only or read-write (notifications are never sent).
///
/// # Safety
/// `session` must be null or valid for a write of a handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard("C_OpenSession", || {
        let token = token()?;
        if session.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        check_slot(slot)?;
        let handle = token.open_session(flags)?;
        // SAFETY: checked for null above.
        unsafe { put(session, handle) }
    })
}

/// Closes a session.
///
/// # Safety
/// None: no pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CloseSession", || token()?.close_session(session))
}

/// Closes every session.
///
/// # Safety
/// None: no pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard("C_CloseAllSessions", || {
        let token = token()?;
        check_slot(slot)?;
        token.close_all_sessions();
        Ok(())
    })
}

/// A session's slot, state and flags.
///
/// # Safety
/// `info` must be null or valid for a write of `CK_SESSION_INFO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard("C_GetSessionInfo", || {
        let token = token()?;
        if info.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let value = token.session_info(session)?;
        // SAFETY: checked for null above.
        unsafe { put(info, value) }
    })
}

/// Logs in with any PIN: the token needs none (see [`Token::login`]).
///
/// # Safety
/// `pin` must be null (with `pin_len` 0) or valid for reads of `pin_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard("C_Login", || {
        let token = token()?;
        // The PIN is not used, but a length without bytes is still a bad call.
        // SAFETY: the caller's pointer and length.
        unsafe { input(pin, pin_len) }?;
        token.login(session, user)
    })
}

/// Logs out.
///
/// # Safety
/// None: no pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_Logout", || token()?.logout(session))
}

/// Copies a caller's template: each attribute's type and value.
///
/// # Safety
/// `template` must be null (with `count` 0) or valid for `count` attributes, each
/// `pValue` null (with length 0) or valid for `ulValueLen` bytes.
unsafe fn read_template(
    template: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, CK_RV> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if template.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, `count` entries per the caller.
    let attributes = unsafe { std::slice::from_raw_parts(template, usize_of(count)) };
    attributes
        .iter()
        .map(|a| {
            // SAFETY: the caller vouches for each value's bytes.
            let value = unsafe { input(a.pValue.cast_const().cast(), a.ulValueLen) }?;
            Ok((a.type_, value.to_vec()))
        })
        .collect()
}

/// Starts a search for the objects matching a template.
///
/// # Safety
/// As `read_template`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard("C_FindObjectsInit", || {
        let token = token()?;
        // SAFETY: the caller's template, as documented.
        let template = unsafe { read_template(template, count) }?;
        token.find_init(session, &template)
    })
}

/// Hands out up to `max` more matches.
///
/// # Safety
/// `objects` must be valid for writes of `max` handles; `count` for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard("C_FindObjects", || {
        let token = token()?;
        if count.is_null() || (objects.is_null() && max > 0) {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let found = token.find(session, usize_of(max))?;
        if !found.is_empty() {
            // SAFETY: at most `max` handles, which the caller said `objects` holds.
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len()) };
        }
        // SAFETY: checked for null above.
        unsafe { put(count, ulong(found.len())) }
    })
}

/// Ends a search.
///
/// # Safety
/// None: no pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_FindObjectsFinal", || token()?.find_final(session))
}

/// Reads attributes with the two-call convention, attribute by attribute: a null `pValue`
/// gets the length; a short buffer gets `CK_UNAVAILABLE_INFORMATION` and
/// `CKR_BUFFER_TOO_SMALL`; an attribute the object does not have gets
/// `CK_UNAVAILABLE_INFORMATION` and `CKR_ATTRIBUTE_TYPE_INVALID`, a secret one
/// `CKR_ATTRIBUTE_SENSITIVE`; every other attribute is still filled.
///
/// # Safety
/// `template` must be valid for reads and writes of `count` attributes, each `pValue`
/// null or valid for writes of `ulValueLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard("C_GetAttributeValue", || {
        let token = token()?;
        if template.is_null() && count > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let (class, objects) = token.attributes(session, object)?;
        if count == 0 {
            return Ok(());
        }
        // SAFETY: non-null, `count` entries per the caller.
        let attributes = unsafe { std::slice::from_raw_parts_mut(template, usize_of(count)) };
        let mut result = Ok(());
        for attribute in attributes {
            let failed = match objects.attribute(class, attribute.type_) {
                AttributeValue::Bytes(value) => {
                    if attribute.pValue.is_null() {
                        attribute.ulValueLen = ulong(value.len());
                        None
                    } else if usize_of(attribute.ulValueLen) >= value.len() {
                        // SAFETY: the caller said `pValue` holds `ulValueLen` ≥ len bytes.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                value.as_ptr(),
                                attribute.pValue.cast::<u8>(),
                                value.len(),
                            );
                        }
                        attribute.ulValueLen = ulong(value.len());
                        None
                    } else {
                        Some(CKR_BUFFER_TOO_SMALL)
                    }
                }
                AttributeValue::Sensitive => Some(CKR_ATTRIBUTE_SENSITIVE),
                AttributeValue::Invalid => Some(CKR_ATTRIBUTE_TYPE_INVALID),
            };
            if let Some(rv) = failed {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                // The first failure is the one returned; the rest are still filled.
                if result.is_ok() {
                    result = Err(rv);
                }
            }
        }
        result
    })
}

/// The bytes of the object's attribute values.
///
/// # Safety
/// `size` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetObjectSize", || {
        let token = token()?;
        if size.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let bytes = token.object_size(session, object)?;
        // SAFETY: checked for null above.
        unsafe { put(size, ulong(bytes)) }
    })
}

/// Reads a mechanism and checks its parameters: none for every mechanism but
/// `CKM_EDDSA`, which may have `CK_EDDSA_PARAMS` asking for pure Ed25519 (no prehash, no
/// context), the only variant OpenSSH and a KMS sign.
///
/// # Safety
/// `mechanism` must be null or point to a `CK_MECHANISM` whose parameter is null or valid
/// for `ulParameterLen` bytes.
unsafe fn read_mechanism(mechanism: *const CK_MECHANISM) -> Result<Mechanism, CK_RV> {
    if mechanism.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, the caller's struct.
    let raw = unsafe { &*mechanism };
    let parsed = Mechanism::from_type(raw.mechanism).ok_or(CKR_MECHANISM_INVALID)?;
    if raw.ulParameterLen == 0 {
        return Ok(parsed);
    }
    if parsed != Mechanism::Eddsa
        || raw.pParameter.is_null()
        || usize_of(raw.ulParameterLen) != std::mem::size_of::<CK_EDDSA_PARAMS>()
    {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    // SAFETY: non-null and exactly the size of the struct, per the caller; read
    // unaligned, as a caller's byte buffer may not be aligned.
    let params = unsafe { raw.pParameter.cast::<CK_EDDSA_PARAMS>().read_unaligned() };
    if params.phFlag != 0 || params.ulContextDataLen != 0 {
        report("CKM_EDDSA: only pure Ed25519 is signed (no prehash, no context data)");
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    Ok(parsed)
}

/// Starts signing with a private key object.
///
/// # Safety
/// As `read_mechanism`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_SignInit", || {
        let token = token()?;
        if mechanism.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        token.check_session(session)?;
        // SAFETY: the caller's mechanism, as documented.
        let mechanism = unsafe { read_mechanism(mechanism) }?;
        token.sign_init(session, mechanism, key)
    })
}

/// Writes a signing result with the two-call convention.
///
/// # Safety
/// `signature` must be null or valid for writes of `*len` bytes; `len` non-null (checked
/// by the caller) and valid.
unsafe fn put_signature(
    output: SignOutput,
    signature: *mut CK_BYTE,
    len: *mut CK_ULONG,
) -> Result<(), CK_RV> {
    match output {
        SignOutput::Length {
            len: needed,
            too_small,
        } => {
            // SAFETY: `len` is valid per the contract.
            unsafe { put(len, ulong(needed)) }?;
            if too_small {
                Err(CKR_BUFFER_TOO_SMALL)
            } else {
                Ok(())
            }
        }
        SignOutput::Signature(bytes) => {
            // SAFETY: the token only signs when `*len` ≥ the signature's length.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), signature, bytes.len()) };
            // SAFETY: as above.
            unsafe { put(len, ulong(bytes.len())) }
        }
    }
}

/// The caller's buffer capacity: `None` for a null buffer (a length query).
///
/// # Safety
/// `len` must be non-null and valid for reads.
unsafe fn capacity(signature: *const CK_BYTE, len: *const CK_ULONG) -> Option<usize> {
    // SAFETY: per the contract.
    (!signature.is_null()).then(|| usize_of(unsafe { len.read() }))
}

/// Signs in one part.
///
/// # Safety
/// `data` must be valid for `data_len` bytes; `signature_len` valid for reads and writes;
/// `signature` null or valid for writes of `*signature_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_Sign", || {
        let token = token()?;
        if signature_len.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the caller's pointers, as documented.
        let data = unsafe { input(data, data_len) }?;
        // SAFETY: `signature_len` is non-null.
        let capacity = unsafe { capacity(signature, signature_len) };
        let output = token.sign(session, data, capacity)?;
        // SAFETY: as documented.
        unsafe { put_signature(output, signature, signature_len) }
    })
}

/// Adds a part to a multi-part signature.
///
/// # Safety
/// `data` must be valid for `data_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    guard("C_SignUpdate", || {
        let token = token()?;
        // SAFETY: the caller's pointer and length.
        let data = unsafe { input(data, data_len) }?;
        token.sign_update(session, data)
    })
}

/// Ends a multi-part signature.
///
/// # Safety
/// As [`C_Sign`] for `signature` and `signature_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    guard("C_SignFinal", || {
        let token = token()?;
        if signature_len.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: `signature_len` is non-null.
        let capacity = unsafe { capacity(signature, signature_len) };
        let output = token.sign_final(session, capacity)?;
        // SAFETY: as documented.
        unsafe { put_signature(output, signature, signature_len) }
    })
}

/// Not supported: the operating system's generator is not seeded by applications.
///
/// # Safety
/// `seed` must be valid for `seed_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    seed_len: CK_ULONG,
) -> CK_RV {
    guard("C_SeedRandom", || {
        let token = token()?;
        // SAFETY: the caller's pointer and length.
        unsafe { input(seed, seed_len) }?;
        token.check_session(session)?;
        Err(CKR_RANDOM_SEED_NOT_SUPPORTED)
    })
}

/// Random bytes from the operating system.
///
/// # Safety
/// `out` must be valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_GenerateRandom", || {
        let token = token()?;
        if out.is_null() && len > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        token.check_session(session)?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: non-null, `len` writable bytes per the caller.
        let buffer = unsafe { std::slice::from_raw_parts_mut(out, usize_of(len)) };
        getrandom::fill(buffer).map_err(|e| {
            report(&format!(
                "C_GenerateRandom: the operating system's generator failed: {e}"
            ));
            CKR_DEVICE_ERROR
        })
    })
}
