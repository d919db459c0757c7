//! Compiles every `.proto` file in `proto/` with a vendored `protoc`, so a fresh machine needs no
//! system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../proto";
    println!("cargo:rerun-if-changed={proto_dir}");
    let mut files: Vec<String> = std::fs::read_dir(proto_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "proto")
        })
        .map(|path| path.display().to_string())
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    tonic_prost_build::configure()
        // Record payloads stay `bytes::Bytes` so they are sliced, not copied, on decode.
        .bytes(".")
        // Every service's schema, for gRPC server reflection (`FILE_DESCRIPTOR_SET`).
        .file_descriptor_set_path(descriptors)
        .compile_protos(&files, &[proto_dir.to_string()])?;
    Ok(())
}
