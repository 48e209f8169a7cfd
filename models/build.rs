//! Compiles `proto/model_config.proto` (our subset of Triton's model configuration, read from a
//! repository's `config.pbtxt`) with protox, a pure-Rust protobuf compiler (no `protoc`), into
//! prost types and the descriptor set `triton::schema` parses the text format against.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/model_config.proto");
    let descriptors = protox::compile(["proto/model_config.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("model_config.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
