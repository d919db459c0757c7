//! Compiles `proto/` with a vendored `protoc`, so a fresh machine needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../proto";
    println!("cargo:rerun-if-changed={proto_dir}");
    println!("cargo:rerun-if-changed={proto_dir}/strata.proto");
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure()
        // Record payloads stay `bytes::Bytes` so they are sliced, not copied, on decode.
        .bytes(".")
        .compile_protos(&[format!("{proto_dir}/strata.proto")], &[proto_dir.to_string()])?;
    Ok(())
}
