//! The C ABI called directly, as a C client would: the two-call size convention for
//! attributes, lists and signatures, null pointers, bad handles, operation rules, the
//! function list and `C_Initialize`'s arguments.
//!
//! Unsafe, because these are raw C calls; every pointer passed is a live local of the
//! stated type and length, unless the test is about a null one.
#![allow(unsafe_code)]

mod support;

use std::ptr;
use std::sync::OnceLock;

use cryptoki_sys::*;
use kmssh_core::{Curve, EcdsaSignature, HashAlgorithm, KeySpec, PublicKey};
use support::KeySet;
use support::raw::{Raw, attribute};

struct Fixture {
    set: KeySet,
    raw: Raw,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let set = KeySet::new(
            &[
                ("p256", KeySpec::Ecdsa(Curve::P256)),
                ("rsa", KeySpec::Rsa(2048)),
            ],
            "",
        );
        // SAFETY: every test calls `fixture()` first and waits on this `OnceLock`, so no
        // other thread of this binary reads the environment while it is written.
        unsafe { std::env::set_var("KMSSH_PKCS11_CONFIG", &set.config) };
        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK);
        Fixture { set, raw }
    })
}

fn f() -> &'static CK_FUNCTION_LIST {
    fixture().raw.f()
}

/// Every pointer in the function list is set, and what the token does not do says so.
#[test]
fn function_list_is_complete() {
    let list = f();
    macro_rules! all_set {
        ($($name:ident),* $(,)?) => { $( assert!(list.$name.is_some(), stringify!($name)); )* };
    }
    all_set!(
        C_Initialize,
        C_Finalize,
        C_GetInfo,
        C_GetFunctionList,
        C_GetSlotList,
        C_GetSlotInfo,
        C_GetTokenInfo,
        C_GetMechanismList,
        C_GetMechanismInfo,
        C_InitToken,
        C_InitPIN,
        C_SetPIN,
        C_OpenSession,
        C_CloseSession,
        C_CloseAllSessions,
        C_GetSessionInfo,
        C_GetOperationState,
        C_SetOperationState,
        C_Login,
        C_Logout,
        C_CreateObject,
        C_CopyObject,
        C_DestroyObject,
        C_GetObjectSize,
        C_GetAttributeValue,
        C_SetAttributeValue,
        C_FindObjectsInit,
        C_FindObjects,
        C_FindObjectsFinal,
        C_EncryptInit,
        C_Encrypt,
        C_EncryptUpdate,
        C_EncryptFinal,
        C_DecryptInit,
        C_Decrypt,
        C_DecryptUpdate,
        C_DecryptFinal,
        C_DigestInit,
        C_Digest,
        C_DigestUpdate,
        C_DigestKey,
        C_DigestFinal,
        C_SignInit,
        C_Sign,
        C_SignUpdate,
        C_SignFinal,
        C_SignRecoverInit,
        C_SignRecover,
        C_VerifyInit,
        C_Verify,
        C_VerifyUpdate,
        C_VerifyFinal,
        C_VerifyRecoverInit,
        C_VerifyRecover,
        C_DigestEncryptUpdate,
        C_DecryptDigestUpdate,
        C_SignEncryptUpdate,
        C_DecryptVerifyUpdate,
        C_GenerateKey,
        C_GenerateKeyPair,
        C_WrapKey,
        C_UnwrapKey,
        C_DeriveKey,
        C_SeedRandom,
        C_GenerateRandom,
        C_GetFunctionStatus,
        C_CancelFunction,
        C_WaitForSlotEvent,
    );
    assert_eq!((list.version.major, list.version.minor), (2, 40));
    let session = fixture().raw.open_session();
    // SAFETY: unsupported functions read none of their arguments.
    unsafe {
        assert_eq!(
            (list.C_EncryptInit.expect("set"))(session, ptr::null_mut(), 1),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            (list.C_DigestInit.expect("set"))(session, ptr::null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            (list.C_VerifyInit.expect("set"))(session, ptr::null_mut(), 1),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            (list.C_DestroyObject.expect("set"))(session, 1),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            (list.C_GenerateKeyPair.expect("set"))(
                session,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            (list.C_WaitForSlotEvent.expect("set"))(0, ptr::null_mut(), ptr::null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            (list.C_CancelFunction.expect("set"))(session),
            CKR_FUNCTION_NOT_PARALLEL
        );
        assert_eq!((list.C_CloseSession.expect("set"))(session), CKR_OK);
    }
}

/// `C_GetAttributeValue`, attribute by attribute: a null buffer gets the length, a short
/// one `CK_UNAVAILABLE_INFORMATION`, an unknown or secret attribute likewise, and every
/// other attribute in the same call is still filled.
#[test]
fn attribute_two_call_convention() {
    let fx = fixture();
    let list = f();
    let session = fx.raw.open_session();
    let public = fx.raw.object(session, CKO_PUBLIC_KEY, "p256");
    let PublicKey::Ecdsa(key) = &fx.set.key("p256").public_key else {
        panic!("P-256")
    };
    let point = key.to_sec1_bytes();
    let get = |template: &mut [CK_ATTRIBUTE], object| {
        // SAFETY: the template's pointers are null or live buffers of the stated lengths.
        unsafe {
            (list.C_GetAttributeValue.expect("set"))(
                session,
                object,
                template.as_mut_ptr(),
                CK_ULONG::try_from(template.len()).expect("len"),
            )
        }
    };

    let mut label = [0u8; 1];
    let mut id = [0u8; 64];
    let mut class: CK_OBJECT_CLASS = 0;
    let mut template = [
        attribute(CKA_EC_POINT, ptr::null_mut(), 0),
        attribute(CKA_LABEL, label.as_mut_ptr(), label.len()),
        attribute(CKA_MODULUS, id.as_mut_ptr(), 0),
        attribute(CKA_ID, id.as_mut_ptr(), id.len()),
        attribute(
            CKA_CLASS,
            (&raw mut class).cast(),
            size_of::<CK_OBJECT_CLASS>(),
        ),
    ];
    assert_eq!(get(&mut template, public), CKR_BUFFER_TOO_SMALL);
    assert_eq!(
        template[0].ulValueLen, 67,
        "length of the EC point's OCTET STRING"
    );
    assert_eq!(
        template[1].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "label buffer too short"
    );
    assert_eq!(
        template[2].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "no modulus on an EC key"
    );
    assert_eq!(template[3].ulValueLen, 16, "the id is still filled");
    assert_eq!(class, CKO_PUBLIC_KEY, "the class is still filled");

    // Second call with the buffer the first one sized.
    let mut buffer = vec![0u8; 67];
    let mut template = [attribute(CKA_EC_POINT, buffer.as_mut_ptr(), buffer.len())];
    assert_eq!(get(&mut template, public), CKR_OK);
    assert_eq!(&buffer[..2], &[0x04, 0x41]);
    assert_eq!(&buffer[2..], &point[..]);

    // An unknown attribute alone.
    let mut template = [attribute(0x8000_1234, id.as_mut_ptr(), id.len())];
    assert_eq!(get(&mut template, public), CKR_ATTRIBUTE_TYPE_INVALID);
    assert_eq!(template[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);

    // The private key's secret value: sensitive, and the rest still answered.
    let private = fx.raw.object(session, CKO_PRIVATE_KEY, "p256");
    let mut sign: CK_BBOOL = 0;
    let mut template = [
        attribute(CKA_VALUE, id.as_mut_ptr(), id.len()),
        attribute(CKA_SIGN, (&raw mut sign).cast(), 1),
    ];
    assert_eq!(get(&mut template, private), CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(template[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(sign, CK_TRUE);
    let rsa_private = fx.raw.object(session, CKO_PRIVATE_KEY, "rsa");
    let mut template = [attribute(CKA_PRIVATE_EXPONENT, ptr::null_mut(), 0)];
    assert_eq!(get(&mut template, rsa_private), CKR_ATTRIBUTE_SENSITIVE);

    // An empty template is a valid no-op; a null one with a count is not.
    assert_eq!(get(&mut [], public), CKR_OK);
    // SAFETY: a null template is what is tested.
    let rv =
        unsafe { (list.C_GetAttributeValue.expect("set"))(session, public, ptr::null_mut(), 1) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

/// `C_Sign`: a null buffer gets the length and the operation stays; a short one gets
/// `CKR_BUFFER_TOO_SMALL`, the length, and the operation stays; then the signature, and
/// the operation is over.
#[test]
fn sign_two_call_convention() {
    let fx = fixture();
    let list = f();
    let session = fx.raw.open_session();
    let key = fx.raw.object(session, CKO_PRIVATE_KEY, "p256");
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut digest = HashAlgorithm::Sha256.digest(b"two calls").to_vec();
    let mut signature = [0u8; 200];
    let mut len: CK_ULONG = 0;
    let data_len = CK_ULONG::try_from(digest.len()).expect("len");
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut mechanism, key),
            CKR_OK
        );
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut mechanism, key),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                digest.as_mut_ptr(),
                data_len,
                ptr::null_mut(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 64);
        len = 10;
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                digest.as_mut_ptr(),
                data_len,
                signature.as_mut_ptr(),
                &mut len
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 64);
        len = 200;
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                digest.as_mut_ptr(),
                data_len,
                signature.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 64);
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                digest.as_mut_ptr(),
                data_len,
                signature.as_mut_ptr(),
                &mut len
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
    let PublicKey::Ecdsa(public) = &fx.set.key("p256").public_key else {
        panic!("P-256")
    };
    let parsed = EcdsaSignature::from_fixed(Curve::P256, &signature[..64]).expect("r||s");
    public.verify_digest(&digest, &parsed).expect("verifies");

    // Multi-part: C_SignFinal follows the same convention; C_Sign cannot end it.
    let mut rsa_mechanism = CK_MECHANISM {
        mechanism: CKM_SHA256_RSA_PKCS,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let rsa = fx.raw.object(session, CKO_PRIVATE_KEY, "rsa");
    let mut part = *b"part";
    let mut out = [0u8; 512];
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut rsa_mechanism, rsa),
            CKR_OK
        );
        assert_eq!(
            (list.C_SignUpdate.expect("set"))(session, part.as_mut_ptr(), 4),
            CKR_OK
        );
        assert_eq!(
            (list.C_Sign.expect("set"))(session, part.as_mut_ptr(), 4, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            (list.C_SignFinal.expect("set"))(session, ptr::null_mut(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 256);
        len = 255;
        assert_eq!(
            (list.C_SignFinal.expect("set"))(session, out.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 256);
        len = 512;
        assert_eq!(
            (list.C_SignFinal.expect("set"))(session, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 256);
        assert_eq!(
            (list.C_SignFinal.expect("set"))(session, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }

    // A refused input ends the operation.
    let mut long = [1u8; 65];
    len = 200;
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut mechanism, key),
            CKR_OK
        );
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                long.as_mut_ptr(),
                65,
                signature.as_mut_ptr(),
                &mut len
            ),
            CKR_DATA_LEN_RANGE
        );
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                digest.as_mut_ptr(),
                data_len,
                signature.as_mut_ptr(),
                &mut len
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!((list.C_CloseSession.expect("set"))(session), CKR_OK);
    }
}

/// The slot and mechanism lists follow the two-call convention too.
#[test]
fn list_two_call_convention() {
    let list = f();
    let mut count: CK_ULONG = 0;
    let mut slots = [99 as CK_SLOT_ID; 2];
    let mut mechanisms = [0 as CK_MECHANISM_TYPE; 20];
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (list.C_GetSlotList.expect("set"))(CK_TRUE, ptr::null_mut(), &mut count),
            CKR_OK
        );
        assert_eq!(count, 1);
        count = 0;
        assert_eq!(
            (list.C_GetSlotList.expect("set"))(CK_TRUE, slots.as_mut_ptr(), &mut count),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(count, 1);
        count = 2;
        assert_eq!(
            (list.C_GetSlotList.expect("set"))(CK_FALSE, slots.as_mut_ptr(), &mut count),
            CKR_OK
        );
        assert_eq!((count, slots[0]), (1, 0));
        assert_eq!(
            (list.C_GetMechanismList.expect("set"))(0, ptr::null_mut(), &mut count),
            CKR_OK
        );
        assert_eq!(count, 9);
        count = 3;
        assert_eq!(
            (list.C_GetMechanismList.expect("set"))(0, mechanisms.as_mut_ptr(), &mut count),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(count, 9);
        count = 20;
        assert_eq!(
            (list.C_GetMechanismList.expect("set"))(0, mechanisms.as_mut_ptr(), &mut count),
            CKR_OK
        );
        assert!(mechanisms[..9].contains(&CKM_EDDSA));
    }
}

/// Null out-pointers and null inputs with a length are `CKR_ARGUMENTS_BAD`.
#[test]
fn null_pointers_are_refused() {
    let fx = fixture();
    let list = f();
    let session = fx.raw.open_session();
    let key = fx.raw.object(session, CKO_PRIVATE_KEY, "p256");
    let mut count: CK_ULONG = 0;
    let mut handle: CK_OBJECT_HANDLE = 0;
    let mut buffer = [0u8; 64];
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    // SAFETY: nulls where tested, live locals elsewhere.
    unsafe {
        assert_eq!(
            (list.C_GetFunctionList.expect("set"))(ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GetInfo.expect("set"))(ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GetSlotList.expect("set"))(CK_TRUE, ptr::null_mut(), ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GetSlotInfo.expect("set"))(0, ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GetTokenInfo.expect("set"))(0, ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GetMechanismInfo.expect("set"))(0, CKM_ECDSA, ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_OpenSession.expect("set"))(
                0,
                CKF_SERIAL_SESSION,
                ptr::null_mut(),
                None,
                ptr::null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GetSessionInfo.expect("set"))(session, ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_Login.expect("set"))(session, CKU_USER, ptr::null_mut(), 4),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_FindObjectsInit.expect("set"))(session, ptr::null_mut(), 2),
            CKR_ARGUMENTS_BAD
        );
        let mut template = [attribute(CKA_LABEL, ptr::null_mut(), 5)];
        assert_eq!(
            (list.C_FindObjectsInit.expect("set"))(session, template.as_mut_ptr(), 1),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_FindObjectsInit.expect("set"))(session, ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (list.C_FindObjects.expect("set"))(session, ptr::null_mut(), 1, &mut count),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_FindObjects.expect("set"))(session, &mut handle, 1, ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!((list.C_FindObjectsFinal.expect("set"))(session), CKR_OK);
        assert_eq!(
            (list.C_GetObjectSize.expect("set"))(session, key, ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, ptr::null_mut(), key),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut mechanism, key),
            CKR_OK
        );
        assert_eq!(
            (list.C_Sign.expect("set"))(
                session,
                buffer.as_mut_ptr(),
                32,
                buffer.as_mut_ptr(),
                ptr::null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_Sign.expect("set"))(session, ptr::null_mut(), 32, ptr::null_mut(), &mut count),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_SignUpdate.expect("set"))(session, ptr::null_mut(), 32),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_SignFinal.expect("set"))(session, ptr::null_mut(), ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GenerateRandom.expect("set"))(session, ptr::null_mut(), 8),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            (list.C_GenerateRandom.expect("set"))(session, buffer.as_mut_ptr(), 64),
            CKR_OK
        );
        assert_eq!((list.C_CloseSession.expect("set"))(session), CKR_OK);
    }
}

/// Unknown sessions, objects, keys and slots are named as such.
#[test]
fn bad_handles_are_refused() {
    let fx = fixture();
    let list = f();
    let session = fx.raw.open_session();
    let public = fx.raw.object(session, CKO_PUBLIC_KEY, "p256");
    let mut info = CK_SESSION_INFO::default();
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut class: CK_OBJECT_CLASS = 0;
    let mut template = [attribute(
        CKA_CLASS,
        (&raw mut class).cast(),
        size_of::<CK_OBJECT_CLASS>(),
    )];
    let mut slot_info = CK_SLOT_INFO::default();
    let mut new_session = 0;
    let bad = 0xdead_beef;
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (list.C_GetSessionInfo.expect("set"))(bad, &mut info),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            (list.C_CloseSession.expect("set"))(bad),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            (list.C_FindObjectsInit.expect("set"))(bad, ptr::null_mut(), 0),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            (list.C_GetAttributeValue.expect("set"))(bad, public, template.as_mut_ptr(), 1),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            (list.C_SignInit.expect("set"))(bad, &mut mechanism, public),
            CKR_SESSION_HANDLE_INVALID
        );
        for object in [0, bad] {
            assert_eq!(
                (list.C_GetAttributeValue.expect("set"))(session, object, template.as_mut_ptr(), 1),
                CKR_OBJECT_HANDLE_INVALID
            );
            assert_eq!(
                (list.C_SignInit.expect("set"))(session, &mut mechanism, object),
                CKR_KEY_HANDLE_INVALID
            );
        }
        mechanism.mechanism = CKM_SHA1_RSA_PKCS;
        let private = fx.raw.object(session, CKO_PRIVATE_KEY, "rsa");
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut mechanism, private),
            CKR_MECHANISM_INVALID
        );
        mechanism.mechanism = CKM_RSA_PKCS;
        let mut parameter = [0u8; 8];
        mechanism.pParameter = parameter.as_mut_ptr().cast();
        mechanism.ulParameterLen = 8;
        assert_eq!(
            (list.C_SignInit.expect("set"))(session, &mut mechanism, private),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            (list.C_GetSlotInfo.expect("set"))(7, &mut slot_info),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            (list.C_OpenSession.expect("set"))(
                7,
                CKF_SERIAL_SESSION,
                ptr::null_mut(),
                None,
                &mut new_session
            ),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            (list.C_OpenSession.expect("set"))(0, 0, ptr::null_mut(), None, &mut new_session),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!((list.C_CloseSession.expect("set"))(session), CKR_OK);
        assert_eq!(
            (list.C_CloseSession.expect("set"))(session),
            CKR_SESSION_HANDLE_INVALID
        );
    }
}

/// A search must be started before use and ended before another; results come in the
/// batch size asked.
#[test]
fn find_operation_rules() {
    let fx = fixture();
    let list = f();
    let session = fx.raw.open_session();
    let mut found = [0 as CK_OBJECT_HANDLE; 4];
    let mut count: CK_ULONG = 0;
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (list.C_FindObjects.expect("set"))(session, found.as_mut_ptr(), 1, &mut count),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            (list.C_FindObjectsFinal.expect("set"))(session),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            (list.C_FindObjectsInit.expect("set"))(session, ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (list.C_FindObjectsInit.expect("set"))(session, ptr::null_mut(), 0),
            CKR_OPERATION_ACTIVE
        );
        let mut all = Vec::new();
        loop {
            assert_eq!(
                (list.C_FindObjects.expect("set"))(session, found.as_mut_ptr(), 3, &mut count),
                CKR_OK
            );
            if count == 0 {
                break;
            }
            assert!(count <= 3);
            all.extend_from_slice(&found[..usize::try_from(count).expect("count")]);
        }
        assert_eq!(all.len(), 4, "two keys, two objects each");
        assert_eq!((list.C_FindObjectsFinal.expect("set"))(session), CKR_OK);
        assert_eq!((list.C_CloseSession.expect("set"))(session), CKR_OK);
    }
}

/// `C_Initialize` refuses bad arguments and a second initialisation; an application that
/// offers only its own mutexes is told we cannot use them.
#[test]
fn initialize_arguments() {
    let fx = fixture();
    let list = f();
    unsafe extern "C" fn create(_: *mut *mut std::ffi::c_void) -> CK_RV {
        CKR_OK
    }
    unsafe extern "C" fn other(_: *mut std::ffi::c_void) -> CK_RV {
        CKR_OK
    }
    let mut reserved = 0u8;
    let cases = [
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: None,
                DestroyMutex: None,
                LockMutex: None,
                UnlockMutex: None,
                flags: 0,
                pReserved: (&raw mut reserved).cast(),
            },
            CKR_ARGUMENTS_BAD,
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: Some(create),
                DestroyMutex: None,
                LockMutex: None,
                UnlockMutex: None,
                flags: CKF_OS_LOCKING_OK,
                pReserved: ptr::null_mut(),
            },
            CKR_ARGUMENTS_BAD,
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: Some(create),
                DestroyMutex: Some(other),
                LockMutex: Some(other),
                UnlockMutex: Some(other),
                flags: 0,
                pReserved: ptr::null_mut(),
            },
            CKR_CANT_LOCK,
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: Some(create),
                DestroyMutex: Some(other),
                LockMutex: Some(other),
                UnlockMutex: Some(other),
                flags: CKF_OS_LOCKING_OK,
                pReserved: ptr::null_mut(),
            },
            CKR_CRYPTOKI_ALREADY_INITIALIZED,
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: None,
                DestroyMutex: None,
                LockMutex: None,
                UnlockMutex: None,
                flags: CKF_OS_LOCKING_OK,
                pReserved: ptr::null_mut(),
            },
            CKR_CRYPTOKI_ALREADY_INITIALIZED,
        ),
    ];
    for (mut args, want) in cases {
        // SAFETY: a live CK_C_INITIALIZE_ARGS.
        let rv = unsafe { (list.C_Initialize.expect("set"))((&raw mut args).cast()) };
        assert_eq!(rv, want, "flags {:#x}", args.flags);
    }
    assert_eq!(fx.raw.initialize(), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    // SAFETY: a non-null reserved pointer is what is tested; it is not read.
    let rv = unsafe { (list.C_Finalize.expect("set"))((&raw mut reserved).cast()) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

/// Login states follow PKCS#11 even though no PIN is checked.
#[test]
fn login_states() {
    let fx = fixture();
    let list = f();
    let session = fx.raw.open_session();
    let mut info = CK_SESSION_INFO::default();
    let mut pin = *b"";
    // SAFETY: live locals; an empty PIN.
    unsafe {
        assert_eq!(
            (list.C_GetSessionInfo.expect("set"))(session, &mut info),
            CKR_OK
        );
        assert_eq!(info.flags & CKF_RW_SESSION, CKF_RW_SESSION);
        assert_eq!(
            (list.C_Login.expect("set"))(session, CKU_CONTEXT_SPECIFIC, pin.as_mut_ptr(), 0),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            (list.C_Login.expect("set"))(session, 7, pin.as_mut_ptr(), 0),
            CKR_USER_TYPE_INVALID
        );
        assert_eq!((list.C_CloseSession.expect("set"))(session), CKR_OK);
    }
}
