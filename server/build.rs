//! Compiles `proto/` with protox (no system `protoc`) into prost messages and tonic stubs,
//! and writes the file descriptor set that gRPC reflection serves.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["rpc.proto", "csr.proto", "revocation.proto"], ["proto"])?;
    std::fs::write(out.join("ssh_cert_descriptor.bin"), files.encode_to_vec())?;
    tonic_prost_build::configure()
        // Requests are kmssh's own types: the CSR stays bytes until the strict decoder in
        // kmssh-pki reads it, and a request that breaks its layout reaches the service as
        // such, to be refused once the caller is known (and recorded).
        .extern_path(
            ".ssh_cert.CloudCertificateSigningRequest",
            "crate::wire::SignCertificateRequest",
        )
        .extern_path(
            ".ssh_cert.GetCertificateAuthorityRequest",
            "crate::wire::GetCertificateAuthorityRequest",
        )
        .codec_path("crate::wire::StrictCodec")
        .compile_fds(files)?;
    Ok(())
}
