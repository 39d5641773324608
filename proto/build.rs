//! Generates the Rust code for `caravan/v1/*.proto` with `protox`, a pure-Rust protobuf
//! compiler, so that building Caravan needs no system `protoc`.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "caravan/v1/exchange.proto",
    "caravan/v1/trust.proto",
    "caravan/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC server reflection, so grpcurl works without the files.
    std::fs::write(
        out.join("caravan_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
