//! The module's life in one process: nothing works before `C_Initialize`, a bad file
//! leaves it uninitialised, `C_Finalize` drops sessions and keys, and initialising again
//! opens the keys again (from the file as it is then).
//!
//! One test, because initialisation is per process and the configuration path is read
//! from the environment; unsafe, because these are raw C calls on live locals.
#![allow(unsafe_code)]

mod support;

use std::ptr;

use cryptoki_sys::*;
use kmssh_core::{Curve, KeySpec};
use support::KeySet;
use support::raw::Raw;

fn set_config(path: &std::path::Path) {
    // SAFETY: this binary has one test and no other thread reads the environment.
    unsafe { std::env::set_var("KMSSH_PKCS11_CONFIG", path) };
}

fn object_count(raw: &Raw) -> usize {
    let f = raw.f();
    let session = raw.open_session();
    let mut found = [0 as CK_OBJECT_HANDLE; 16];
    let mut count: CK_ULONG = 0;
    // SAFETY: live locals of the stated lengths.
    unsafe {
        assert_eq!(
            (f.C_FindObjectsInit.expect("set"))(session, ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (f.C_FindObjects.expect("set"))(session, found.as_mut_ptr(), 16, &mut count),
            CKR_OK
        );
        assert_eq!((f.C_FindObjectsFinal.expect("set"))(session), CKR_OK);
        assert_eq!((f.C_CloseSession.expect("set"))(session), CKR_OK);
    }
    usize::try_from(count).expect("count")
}

/// Before, between and after initialisations.
#[test]
fn initialise_finalise_and_again() {
    let raw = Raw::load();
    let f = raw.f();
    let mut info = CK_INFO::default();
    let mut count: CK_ULONG = 0;
    let mut session: CK_SESSION_HANDLE = 0;
    // SAFETY: live locals.
    unsafe {
        assert_eq!(
            (f.C_GetInfo.expect("set"))(&mut info),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            (f.C_GetSlotList.expect("set"))(CK_TRUE, ptr::null_mut(), &mut count),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(
            (f.C_OpenSession.expect("set"))(
                0,
                CKF_SERIAL_SESSION,
                ptr::null_mut(),
                None,
                &mut session
            ),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
    }
    assert_eq!(raw.finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);

    let set = KeySet::new(&[("one", KeySpec::Ecdsa(Curve::P256))], "");
    set_config(&set.dir.path().join("missing.toml"));
    assert_eq!(raw.initialize(), CKR_GENERAL_ERROR, "missing file");
    // SAFETY: a live local.
    assert_eq!(
        unsafe { (f.C_GetInfo.expect("set"))(&mut info) },
        CKR_CRYPTOKI_NOT_INITIALIZED
    );

    set_config(&set.config);
    assert_eq!(raw.initialize(), CKR_OK);
    assert_eq!(object_count(&raw), 2);
    let open = raw.open_session();
    assert_eq!(raw.finalize(), CKR_OK);
    let mut session_info = CK_SESSION_INFO::default();
    // SAFETY: a live local.
    let rv = unsafe { (f.C_GetSessionInfo.expect("set"))(open, &mut session_info) };
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_eq!(raw.finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);

    // A second key added to the file is there after initialising again.
    let second = set.dir.path().join("two");
    kmssh_backend_local::create_key_file(&second, KeySpec::Ed25519).expect("key");
    let mut text = std::fs::read_to_string(&set.config).expect("read");
    text.push_str(&format!(
        "[[key]]\nlabel = \"two\"\nuri = \"local:{}\"\n",
        second.display()
    ));
    std::fs::write(&set.config, text).expect("write");
    assert_eq!(raw.initialize(), CKR_OK);
    assert_eq!(object_count(&raw), 4);
    // SAFETY: a live local.
    assert_eq!(unsafe { (f.C_GetInfo.expect("set"))(&mut info) }, CKR_OK);
    assert_eq!(&info.manufacturerID[..5], b"kmssh");
    assert_eq!(raw.finalize(), CKR_OK);
}
