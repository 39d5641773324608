//! Where a payload is kept: in the engine up to its inline limit, else appended to a segment
//! file, with its location and block checksums recorded (`payload_at`, `outbox_payloads`,
//! `receipted_payloads`), and read back only if it matches them.

use std::sync::Arc;

use caravan_common::store::{
    StoreError,
    keys::u64_of,
    segments::{self, Location, Placed, SegmentError},
};

use super::SpokeStore;

/// Where a payload kept in a segment is, as stored: segment (u32), offset (u64), length (u64),
/// then the CRC-32 (u32) of each block.
pub(super) fn encode_location(placed: &Placed, len: usize) -> Vec<u8> {
    let at = placed.at;
    let mut pointer = Vec::with_capacity(20 + 4 * placed.checksums.len());
    pointer.extend_from_slice(&at.segment.to_be_bytes());
    pointer.extend_from_slice(&at.offset.to_be_bytes());
    pointer.extend_from_slice(&(len as u64).to_be_bytes());
    for sum in &placed.checksums {
        pointer.extend_from_slice(&sum.to_be_bytes());
    }
    pointer
}

/// A payload's place: where, how long, and its block checksums (empty: written before them).
pub(super) struct Placement {
    pub(super) at: Location,
    pub(super) len: usize,
    pub(super) checksums: Vec<u32>,
}

pub(super) fn decode_location(pointer: &[u8]) -> Result<Placement, StoreError> {
    let corrupt = || StoreError::corrupt("payload location", "does not decode");
    let segment = pointer
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(corrupt)?;
    let offset = pointer.get(4..12).and_then(u64_of).ok_or_else(corrupt)?;
    let len = pointer
        .get(12..20)
        .and_then(u64_of)
        .and_then(|l| usize::try_from(l).ok())
        .ok_or_else(corrupt)?;
    let sums = &pointer[20..];
    if !sums.len().is_multiple_of(4)
        || (!sums.is_empty() && sums.len() / 4 != len.div_ceil(segments::CHECK_BLOCK))
    {
        return Err(corrupt());
    }
    let checksums = sums
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Placement {
        at: Location { segment, offset },
        len,
        checksums,
    })
}

impl SpokeStore {
    /// Where a payload goes: `None` to be written with its record (up to the engine's inline
    /// limit), else appended to a segment now, and the encoded location to record. Either is
    /// durable with the next flush (see the module docs).
    pub(super) fn place_payload(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if payload.len() <= self.db.inline_payload_limit() {
            return Ok(None);
        }
        let placed = self.db.append_payload(payload)?;
        Ok(Some(encode_location(&placed, payload.len())))
    }

    /// The payload at an encoded segment location from [`Self::place_payload`], checked
    /// against its checksums; `key` and `document` name it.
    pub(super) fn read_placed(
        &self,
        pointer: &[u8],
        key: &[u8],
        document: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let p = decode_location(pointer)?;
        match self.db.segments().read(p.at, 0, p.len, &p.checksums) {
            Ok(bytes) => Ok(bytes),
            Err(e @ SegmentError::Corrupt { .. }) => {
                if self.damaged.note(key.to_vec()) {
                    tracing::error!(store = %self.path.display(), document, cause = %e,
                        "stored payload fails its checksum; it is not served, and health reports STORE_CORRUPT until a restart");
                }
                Err(StoreError::PayloadCorrupt {
                    document: document.to_owned(),
                    source: Arc::new(e),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}
