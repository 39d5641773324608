//! Caravan's wire contract, `caravan.v1`, and the only crate that knows the wire format.
//!
//! The `.proto` files in `proto/caravan/v1/` are the contract other countries compile in their
//! own languages; `build.rs` generates the Rust side with `protox`, so no system `protoc` is
//! needed. Generated structs stop at the gRPC handlers: the modules here seal and open the
//! signed objects (envelopes, receipts, acknowledgements) and turn them into the typed values of
//! `caravan-common`, and map refusals to and from gRPC statuses.
//!
//! **Architecture invariant:** signed bytes are verified before they are decoded, and never
//! re-encoded; see [`envelope::open`].

#![forbid(unsafe_code)]

pub mod ack;
pub mod envelope;
pub mod log;
pub mod receipt;
pub mod status;
pub mod trust_list;

/// Generated code for package `caravan.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("caravan.v1");
}

/// The most payload bytes one gRPC message carries: a unary `Submit`, one `SubmitStream` chunk,
/// one delivery frame. Larger documents are streamed in chunks of this size. The hub decodes no
/// larger message (plus the envelope around it): tonic reads a whole message into memory
/// before any handler runs, so this, not `max_payload_bytes`, bounds what a request costs
/// before the hub's own checks and its payload budget apply.
pub const MAX_PAYLOAD_PER_MESSAGE: usize = 1024 * 1024;

/// The encoded `FileDescriptorSet` of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/caravan_descriptor.bin"));

use caravan_common::{KeyId, Refusal, RefusalCode};

/// The key id a signature names and the signature bytes; an unparsable id names no registered
/// key.
fn signature_parts<'a>(
    signature: Option<&'a v1::Signature>,
    what: &str,
) -> Result<(KeyId, &'a [u8]), Refusal> {
    let signature = signature.ok_or_else(|| {
        Refusal::new(
            RefusalCode::MalformedRequest,
            format!("{what} has no signature"),
        )
    })?;
    let key_id = signature.key_id.parse().map_err(|_| {
        Refusal::new(
            RefusalCode::UnknownKey,
            format!(
                "{what} names key {:?}, which is not a key id",
                signature.key_id
            ),
        )
    })?;
    Ok((key_id, signature.signature.as_slice()))
}

fn signature_of(key_id: KeyId, signature: [u8; 64]) -> v1::Signature {
    v1::Signature {
        key_id: key_id.to_string(),
        signature: signature.to_vec(),
    }
}

fn digest32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}
