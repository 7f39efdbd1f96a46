//! The conformance suite against the local backend: every kind of key (ECDSA P-256,
//! P-384, P-521, RSA-2048/3072/4096, Ed25519), every signing engine compiled in (AWS-LC
//! by default, RustCrypto always), and OpenSSH key files made by `ssh-keygen` reached by
//! path. Local keys have no wire, so the fault cases are skipped by capability.

use kmssh_backend_local as _;
use kmssh_conformance::conformance_suite;

conformance_suite!(rustcrypto => kmssh_conformance::local::LocalFixture::rustcrypto());

#[cfg(feature = "local-aws-lc")]
conformance_suite!(aws_lc => kmssh_conformance::local::LocalFixture::aws_lc());

conformance_suite!(file => kmssh_conformance::local::LocalFixture::files());
