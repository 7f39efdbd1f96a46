//! The module's C function list, loaded with `libloading` and called directly: what a C
//! client does, including what `cryptoki` will not do (null and short buffers, bad
//! handles, bad arguments).
//!
//! Unsafe, because calling a C ABI through raw pointers is; the calls pass pointers to
//! live Rust values of the right C types, as a careful C client would.
#![allow(unsafe_code)]

use std::ptr;

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_ATTRIBUTE_TYPE, CK_FUNCTION_LIST, CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_RV,
    CK_SESSION_HANDLE, CK_ULONG, CKA_CLASS, CKA_LABEL, CKF_RW_SESSION, CKF_SERIAL_SESSION, CKR_OK,
};

/// The loaded module and its function list.
pub struct Raw {
    _library: libloading::Library,
    list: &'static CK_FUNCTION_LIST,
}

type GetFunctionList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;

impl Raw {
    /// Loads the module (the same handle as any earlier load in this process).
    pub fn load() -> Self {
        let path = super::module_path();
        // SAFETY: loading our own module runs no initialisers that need anything.
        let library = unsafe { libloading::Library::new(&path) }.expect("dlopen the module");
        // SAFETY: the symbol has this C type (PKCS#11's `C_GetFunctionList`).
        let get: libloading::Symbol<'_, GetFunctionList> =
            unsafe { library.get(b"C_GetFunctionList\0") }.expect("C_GetFunctionList");
        let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
        // SAFETY: a valid out pointer.
        assert_eq!(unsafe { get(&mut list) }, CKR_OK);
        assert!(!list.is_null());
        // SAFETY: the module's list is static and lives while the library is loaded, and
        // `Raw` keeps the library loaded.
        let list = unsafe { &*list };
        Self {
            _library: library,
            list,
        }
    }

    /// The function list.
    pub fn f(&self) -> &CK_FUNCTION_LIST {
        self.list
    }

    /// `C_Initialize(NULL)`.
    pub fn initialize(&self) -> CK_RV {
        // SAFETY: a null argument is allowed.
        unsafe { (self.list.C_Initialize.expect("set"))(ptr::null_mut()) }
    }

    /// `C_Finalize(NULL)`.
    pub fn finalize(&self) -> CK_RV {
        // SAFETY: a null argument is required.
        unsafe { (self.list.C_Finalize.expect("set"))(ptr::null_mut()) }
    }

    /// Opens a read-write serial session on slot 0.
    pub fn open_session(&self) -> CK_SESSION_HANDLE {
        let mut session = 0;
        // SAFETY: a valid out pointer; no notification callback.
        let rv = unsafe {
            (self.list.C_OpenSession.expect("set"))(
                0,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                ptr::null_mut(),
                None,
                &mut session,
            )
        };
        assert_eq!(rv, CKR_OK, "C_OpenSession");
        session
    }

    /// The handle of the object of `class` labelled `label`.
    pub fn object(
        &self,
        session: CK_SESSION_HANDLE,
        class: CK_OBJECT_CLASS,
        label: &str,
    ) -> CK_OBJECT_HANDLE {
        let mut class = class;
        let mut label = label.as_bytes().to_vec();
        let mut template = [
            attribute(
                CKA_CLASS,
                (&raw mut class).cast(),
                size_of::<CK_OBJECT_CLASS>(),
            ),
            attribute(CKA_LABEL, label.as_mut_ptr(), label.len()),
        ];
        let f = self.list;
        let mut found = [0; 2];
        let mut count = 0;
        // SAFETY: the template's pointers are live locals of the stated lengths; the
        // output array has room for 2.
        unsafe {
            assert_eq!(
                (f.C_FindObjectsInit.expect("set"))(session, template.as_mut_ptr(), 2),
                CKR_OK
            );
            assert_eq!(
                (f.C_FindObjects.expect("set"))(session, found.as_mut_ptr(), 2, &mut count),
                CKR_OK
            );
            assert_eq!((f.C_FindObjectsFinal.expect("set"))(session), CKR_OK);
        }
        assert_eq!(count, 1, "one object labelled as asked");
        found[0]
    }
}

/// A template entry.
pub fn attribute(kind: CK_ATTRIBUTE_TYPE, value: *mut u8, len: usize) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: value.cast(),
        ulValueLen: CK_ULONG::try_from(len).expect("length"),
    }
}
