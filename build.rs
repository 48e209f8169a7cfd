//! Compiles `proto/inference.proto` (the KServe v2 gRPC service, importing Triton's model
//! configuration from `models/proto/model_config.proto`) with protox, a pure-Rust protobuf
//! compiler, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    println!("cargo:rerun-if-changed=models/proto/model_config.proto");
    // Triton's model configuration is the models crate's schema (config.pbtxt), imported.
    let descriptors = protox::compile(["proto/inference.proto"], ["proto", "models/proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Raw tensor bytes as `bytes::Bytes`: decoded as a slice of tonic's receive buffer, not
        // copied into a Vec of their own.
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        // prost's codec, with a request that does not parse answered INVALID_ARGUMENT.
        .codec_path("crate::grpc::codec::KServeCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
