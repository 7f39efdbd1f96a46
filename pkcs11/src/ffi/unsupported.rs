//! Entry points the token does not offer: each answers `CKR_FUNCTION_NOT_SUPPORTED` (so
//! every pointer in the function list is callable), touching none of its arguments.

use std::os::raw::c_void;

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BYTE, CK_FLAGS, CK_MECHANISM, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE,
    CK_SLOT_ID, CK_ULONG, CK_UTF8CHAR, CKR_FUNCTION_NOT_PARALLEL, CKR_FUNCTION_NOT_SUPPORTED,
};

/// Defines exported entry points that answer a fixed return value.
macro_rules! fixed_answer {
    ($rv:expr => $( $(#[$doc:meta])* fn $name:ident($($arg:ty),* $(,)?); )*) => {
        $(
            $(#[$doc])*
            ///
            /// # Safety
            /// None of the arguments is read.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($(_: $arg),*) -> CK_RV {
                $rv
            }
        )*
    };
}

fixed_answer! { CKR_FUNCTION_NOT_SUPPORTED =>
    /// Not supported: the token is configured by its file, not initialised by clients.
    fn C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR);
    /// Not supported: the token has no PIN.
    fn C_InitPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG);
    /// Not supported: the token has no PIN.
    fn C_SetPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR, CK_ULONG);
    /// Not supported: operation state is not exported.
    fn C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: operation state is not imported.
    fn C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    /// Not supported: the objects are the configured keys.
    fn C_CreateObject(CK_SESSION_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    /// Not supported: the objects are the configured keys.
    fn C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    /// Not supported: the objects are the configured keys.
    fn C_DestroyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    /// Not supported: attributes are read-only.
    fn C_SetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG);
    /// Not supported: signing keys only.
    fn C_EncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    /// Not supported: signing keys only.
    fn C_Encrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: signing keys only.
    fn C_EncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: signing keys only.
    fn C_EncryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: signing keys only.
    fn C_DecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    /// Not supported: signing keys only.
    fn C_Decrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: signing keys only.
    fn C_DecryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: signing keys only.
    fn C_DecryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: the hash-and-sign mechanisms hash inside the token.
    fn C_DigestInit(CK_SESSION_HANDLE, *mut CK_MECHANISM);
    /// Not supported.
    fn C_Digest(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported.
    fn C_DigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    /// Not supported.
    fn C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    /// Not supported.
    fn C_DigestFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: no signature with message recovery.
    fn C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    /// Not supported.
    fn C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: verify with the public key (`CKA_PUBLIC_KEY_INFO`) anywhere.
    fn C_VerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    /// Not supported.
    fn C_Verify(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    /// Not supported.
    fn C_VerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    /// Not supported.
    fn C_VerifyFinal(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    /// Not supported.
    fn C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    /// Not supported.
    fn C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported.
    fn C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported.
    fn C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported.
    fn C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported.
    fn C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported: keys are created in the KMS (or with `kmssh … --create`).
    fn C_GenerateKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    /// Not supported: keys are created in the KMS (or with `kmssh … --create`).
    fn C_GenerateKeyPair(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE, *mut CK_OBJECT_HANDLE);
    /// Not supported.
    fn C_WrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    /// Not supported.
    fn C_UnwrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    /// Not supported.
    fn C_DeriveKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    /// Not supported: the one slot never changes.
    fn C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut c_void);
}

fixed_answer! { CKR_FUNCTION_NOT_PARALLEL =>
    /// Legacy: PKCS#11 says every module answers `CKR_FUNCTION_NOT_PARALLEL`.
    fn C_GetFunctionStatus(CK_SESSION_HANDLE);
    /// Legacy: PKCS#11 says every module answers `CKR_FUNCTION_NOT_PARALLEL`.
    fn C_CancelFunction(CK_SESSION_HANDLE);
}
