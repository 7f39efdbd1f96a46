//! The C ABI: `C_GetFunctionList`, the function list, every `C_*` entry point, and the
//! guards they share.
//!
//! This is the crate's one unsafe module, because a C ABI is made of raw pointers the
//! caller owns: reading a template, writing a length, filling a buffer all dereference
//! them. Each entry point checks its pointers (null → `CKR_ARGUMENTS_BAD`), trusts no
//! length beyond what the caller says its buffer holds, runs inside [`guard`] (a panic
//! becomes `CKR_GENERAL_ERROR` and never unwinds into C), and hands everything else to
//! the safe [`Token`](crate::token::Token).
#![allow(unsafe_code)]

mod entry;
mod unsupported;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError, RwLock};

use cryptoki_sys::{
    CK_FUNCTION_LIST, CK_RV, CK_ULONG, CK_VERSION, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
    CKR_CRYPTOKI_NOT_INITIALIZED, CKR_GENERAL_ERROR, CKR_OK,
};

use crate::token::{Token, report};

pub use entry::*;
pub use unsupported::*;

/// The initialised module, and the process that initialised it.
struct Initialized {
    token: Arc<Token>,
    pid: u32,
}

/// The initialised module: `None` before `C_Initialize` and after `C_Finalize`.
static STATE: RwLock<Option<Initialized>> = RwLock::new(None);

/// The token, for an entry point that needs an initialised module. A child forked after
/// `C_Initialize` has the parent's state but not its runtime's threads: PKCS#11 says it
/// must initialise again, so until it does it is told it has not.
fn token() -> Result<Arc<Token>, CK_RV> {
    STATE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .filter(|state| state.pid == std::process::id())
        .map(|state| Arc::clone(&state.token))
        .ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)
}

/// Takes the state out for `C_Finalize` or a new `C_Initialize`: this process's token, or
/// `None`. A parent's token inherited over `fork` is forgotten, not dropped: dropping it
/// would wait for runtime threads that do not exist in this process.
fn take_own(state: &mut Option<Initialized>) -> Option<Arc<Token>> {
    match state.take() {
        Some(own) if own.pid == std::process::id() => Some(own.token),
        Some(inherited) => {
            std::mem::forget(inherited);
            None
        }
        None => None,
    }
}

/// Runs an entry point's body: `Ok` → `CKR_OK`, `Err(rv)` → `rv`, a panic →
/// `CKR_GENERAL_ERROR` with a line on stderr (a panic must not unwind into C, which is
/// undefined behaviour).
fn guard(name: &str, body: impl FnOnce() -> Result<(), CK_RV>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => {
            report(&format!(
                "{name}: internal error (a panic); please report it"
            ));
            CKR_GENERAL_ERROR
        }
    }
}

/// A `CK_ULONG` from a Rust length (lengths here are far below `CK_ULONG::MAX`).
fn ulong(len: usize) -> CK_ULONG {
    CK_ULONG::try_from(len).unwrap_or(CK_ULONG::MAX)
}

/// A Rust length from a caller's `CK_ULONG` (saturating on 32-bit targets: the caller
/// never has more than `usize::MAX` bytes anyway).
fn usize_of(len: CK_ULONG) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// A blank-padded fixed-width string field, cut to fit.
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut field = [b' '; N];
    let len = text.len().min(N);
    field[..len].copy_from_slice(&text.as_bytes()[..len]);
    field
}

/// The caller's `len` bytes at `ptr`.
///
/// # Safety
/// `ptr` must be null or valid for reads of `len` bytes for `'a`.
unsafe fn input<'a>(ptr: *const u8, len: CK_ULONG) -> Result<&'a [u8], CK_RV> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller vouches for `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, usize_of(len)) })
}

/// Writes one value through a caller's out pointer.
///
/// # Safety
/// `ptr` must be null or valid for a write of `T`.
unsafe fn put<T>(ptr: *mut T, value: T) -> Result<(), CK_RV> {
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null and, per the caller, writable; `write` does not read the old value.
    unsafe { ptr.write(value) };
    Ok(())
}

/// The two-call convention for a list: with a null `list`, the count goes to `*count`;
/// with a list of `*count` entries too short, the needed count and
/// `CKR_BUFFER_TOO_SMALL`; else the items and their count.
///
/// # Safety
/// `count` must be null or valid for reads and writes; `list` null or valid for writes of
/// `*count` items.
unsafe fn put_list<T: Copy>(items: &[T], list: *mut T, count: *mut CK_ULONG) -> Result<(), CK_RV> {
    if count.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: `count` is non-null and the caller's.
    let capacity = usize_of(unsafe { count.read() });
    // SAFETY: as above.
    unsafe { count.write(ulong(items.len())) };
    if list.is_null() {
        return Ok(());
    }
    if capacity < items.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    // SAFETY: the caller said `list` holds `capacity` ≥ `items.len()` entries.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), list, items.len()) };
    Ok(())
}

/// The module's function list (PKCS#11 2.40): every pointer filled, so no caller ever
/// calls through a null one; what the token does not do answers
/// `CKR_FUNCTION_NOT_SUPPORTED`.
static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};

/// Hands out the function list: the one symbol OpenSSH looks up.
///
/// # Safety
/// `list` must be null or valid for a write of one pointer. The list is static and must
/// not be written through.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard("C_GetFunctionList", || {
        // SAFETY: `put` checks null; the caller vouches for the rest. The pointer is
        // handed out as `*mut` only because the C type says so; callers only read it.
        unsafe { put(list, (&raw const FUNCTION_LIST).cast_mut()) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed-width fields are blank-padded and cut.
    #[test]
    fn padded_fields() {
        assert_eq!(&padded::<8>("kmssh"), b"kmssh   ");
        assert_eq!(&padded::<3>("kmssh"), b"kms");
    }
}
