//! Compiles `proto/` with protox (no system `protoc`) into prost messages and tonic stubs,
//! and writes the file descriptor set that gRPC reflection serves.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["rpc.proto", "csr.proto"], ["proto"])?;
    std::fs::write(out.join("ssh_cert_descriptor.bin"), files.encode_to_vec())?;
    tonic_prost_build::configure()
        // The request is decoded by kmssh's own type: the CSR stays bytes until the
        // strict decoder in kmssh-pki reads it.
        .extern_path(
            ".ssh_cert.CloudCertificateSigningRequest",
            "crate::wire::SignCertificateRequest",
        )
        .codec_path("crate::wire::StrictCodec")
        .compile_fds(files)?;
    Ok(())
}
