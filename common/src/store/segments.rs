//! Document payloads in append-only segment files beside a store's own files (hub and spokes).
//!
//! sled 0.34 keeps every value it has written in memory for the life of the process, whatever
//! its cache size (measured: 1,000 values of 1 MiB leave 1 GiB resident; 3,000 leave 3 GiB),
//! so a store that kept payloads in sled would grow with every document. Payloads are therefore
//! appended to `payload-segments/seg-<n>.bin` (a new segment past 256 MiB), and the database
//! holds only where each one is. A payload is written before the transaction that records it,
//! and the store syncs the segment before it flushes the database, so nothing durable names a
//! payload that is not on disk; bytes written for a transaction that then failed are left as
//! unreferenced garbage. Reads are positioned (`pread`), so they need no lock.
//!
//! Every payload appended gets a CRC-32 per block of [`CHECK_BLOCK`] bytes ([`Placed`]), which
//! the record that names the payload keeps beside its location; a read with them checks every
//! block it returns and answers [`SegmentError::Corrupt`] (file, offset, block) on a mismatch,
//! never the bytes. CRC-32 (`crc32fast`, already under sled, SIMD: measured 11-12 GB/s here,
//! 90 us per 1 MiB block) rather than SHA-256 (1.3-1.4 GB/s in the same run): it guards
//! against the disk, not an attacker (the signed header's SHA-256 does that, at the
//! recipient), and a check per block lets a delivery check each 1 MiB frame before it sends
//! it, without reading a document twice. Payloads written before
//! the checksums have none: they are read as before, unchecked.
//!
//! Plain files, `std` and `crc32fast`: the one piece of storage the two stores share.

use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    hash::Hash,
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Failures of the segment files; both name the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes read do not match the checksum recorded when they were written.
    #[error(
        "{}: the payload at offset {offset} fails its checksum in block {block} (bytes {}..{} of the payload): CRC-32 recorded {expected:08x}, read {found:08x}",
        .file.display(), *block as u64 * CHECK_BLOCK as u64, *block as u64 * CHECK_BLOCK as u64 + *len as u64
    )]
    Corrupt {
        file: PathBuf,
        segment: u32,
        /// Where the payload starts in its segment.
        offset: u64,
        block: u32,
        /// Bytes in the block.
        len: usize,
        expected: u32,
        found: u32,
    },
}

/// Payload bytes are checked in blocks of this size: a hub's stored chunk and delivery frame.
pub const CHECK_BLOCK: usize = 1024 * 1024;

/// A segment is closed for writing once it holds this many bytes.
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// The folder, inside the store's folder.
pub const FOLDER: &str = "payload-segments";

/// An I/O error with the file it concerns; the OS error stays reachable as its source (so
/// [`crate::fd::is_exhaustion`] still recognises `EMFILE`).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
struct Located {
    path: String,
    source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| {
        std::io::Error::new(
            source.kind(),
            Located {
                path: path.display().to_string(),
                source,
            },
        )
        .into()
    }
}

/// The CRC-32 of each [`CHECK_BLOCK`] of `payload` (none for an empty one).
pub fn checksums(payload: &[u8]) -> Vec<u32> {
    payload.chunks(CHECK_BLOCK).map(crc32fast::hash).collect()
}

/// Where a payload was appended, and the checksums of its blocks to keep with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub at: Location,
    pub checksums: Vec<u32>,
}

/// Where a payload is: segment number (from 1) and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: u32,
    pub offset: u64,
}

struct Writer {
    segment: u32,
    file: File,
    len: u64,
    /// Segments closed since the last sync.
    unsynced: Vec<File>,
    /// Whether the current segment was written to since the last sync.
    dirty: bool,
    /// A write or sync of the current segment failed (a full disk, say): what it holds past
    /// its last good sync is uncertain, so the next append starts a new segment.
    broken: bool,
}

/// The segment files of one store.
pub struct Segments {
    dir: PathBuf,
    writer: Mutex<Writer>,
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("seg-{segment:06}.bin"))
}

fn open_for_append(path: &Path) -> Result<File, SegmentError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(io(path))
}

fn sync_all(w: &mut Writer) -> std::io::Result<()> {
    for closed in w.unsynced.drain(..) {
        closed.sync_data()?;
    }
    // Most flushes follow state changes alone: nothing new to sync then.
    if w.dirty {
        w.file.sync_data()?;
        w.dirty = false;
    }
    Ok(())
}

impl Segments {
    /// Open (or create) the segments in `store/payload-segments`, appending to the last one.
    pub fn open(store: &Path) -> Result<Self, SegmentError> {
        let dir = store.join(FOLDER);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut last = 1;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let name = entry.map_err(io(&dir))?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("seg-")?.strip_suffix(".bin")?.parse().ok())
            {
                last = last.max(n);
            }
        }
        let path = segment_path(&dir, last);
        let file = open_for_append(&path)?;
        let len = file.metadata().map_err(io(&path))?.len();
        Ok(Self {
            dir,
            writer: Mutex::new(Writer {
                segment: last,
                file,
                len,
                unsynced: Vec::new(),
                dirty: false,
                broken: false,
            }),
        })
    }

    /// Append `payload`; durable after the next [`Segments::sync`].
    pub fn append(&self, payload: &[u8]) -> Result<Placed, SegmentError> {
        // Computed before the lock: appends of other writers need not wait for it.
        let checksums = checksums(payload);
        let at = self.append_bytes(payload)?;
        Ok(Placed { at, checksums })
    }

    fn append_bytes(&self, payload: &[u8]) -> Result<Location, SegmentError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if w.len >= SEGMENT_BYTES || w.broken {
            let segment = w.segment + 1;
            let path = segment_path(&self.dir, segment);
            let file = open_for_append(&path)?;
            let closed = std::mem::replace(&mut w.file, file);
            // A broken segment's writes all failed their callers: nothing durable needs them.
            if !w.broken {
                w.unsynced.push(closed);
            }
            w.segment = segment;
            w.len = 0;
            w.broken = false;
            w.dirty = false;
        }
        w.dirty = true;
        let at = Location {
            segment: w.segment,
            offset: w.len,
        };
        let path = segment_path(&self.dir, w.segment);
        if let Err(e) = w.file.write_all(payload) {
            // A partial write leaves garbage at the end: appends go on in a new segment.
            w.broken = true;
            return Err(io(&path)(e));
        }
        w.len += payload.len() as u64;
        Ok(at)
    }

    /// `len` bytes at `at` + `skip`, checked against `checksums` (the payload's, from
    /// [`Segments::append`]; empty: written before checksums, read unchecked). A checked read
    /// starts at a block boundary (`skip` a multiple of [`CHECK_BLOCK`]). Each read opens the
    /// segment, so a process out of file descriptors fails here: that is reported as such
    /// ([`crate::fd`]), never as a missing payload. To read a payload block after block, open
    /// a [`PayloadReader`] once instead.
    pub fn read(
        &self,
        at: Location,
        skip: u64,
        len: usize,
        checksums: &[u32],
    ) -> Result<Vec<u8>, SegmentError> {
        let path = segment_path(&self.dir, at.segment);
        let file = open_for_read(&path)?;
        read_checked(&file, &path, at, skip, len, checksums)
    }

    /// A reader of the payload at `at` (with its `checksums`) that opens the segment file
    /// once, for reading the payload block after block; running out of file descriptors
    /// fails here as in [`Segments::read`].
    pub fn reader(&self, at: Location, checksums: Vec<u32>) -> Result<PayloadReader, SegmentError> {
        let path = segment_path(&self.dir, at.segment);
        let file = open_for_read(&path)?;
        Ok(PayloadReader {
            file,
            path,
            at,
            checksums,
        })
    }

    /// The length of segment `segment`'s file (`None`: there is no such file), for checks that
    /// a record's payload lies inside its segment.
    pub fn segment_len(&self, segment: u32) -> Result<Option<u64>, SegmentError> {
        let path = segment_path(&self.dir, segment);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The path of segment `segment`'s file (for reports).
    pub fn segment_file(&self, segment: u32) -> PathBuf {
        segment_path(&self.dir, segment)
    }

    /// Make every append so far durable (`fdatasync`).
    pub fn sync(&self) -> Result<(), SegmentError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let synced = sync_all(&mut w);
        if synced.is_err() {
            // After a failed fsync the kernel may have dropped the unwritten pages and will
            // not say so again: nothing more is appended to this segment.
            w.broken = true;
            w.unsynced.clear();
        }
        synced.map_err(io(&self.dir))
    }

    /// Bytes in all segments.
    pub fn size(&self) -> Result<u64, SegmentError> {
        let mut bytes = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            bytes += entry
                .and_then(|e| e.metadata())
                .map_err(io(&self.dir))?
                .len();
        }
        Ok(bytes)
    }

    /// Copy every segment into `dest/payload-segments` (for a backup; appends must be held
    /// off by the caller).
    pub fn copy_to(&self, dest: &Path) -> Result<u64, SegmentError> {
        let to = dest.join(FOLDER);
        std::fs::create_dir_all(&to).map_err(io(&to))?;
        let mut bytes = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let target = to.join(entry.file_name());
            bytes += std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(io(&target))?;
        }
        Ok(bytes)
    }
}

/// Open a segment to read it, telling [`crate::fd`] whether descriptors ran out.
fn open_for_read(path: &Path) -> Result<File, SegmentError> {
    match File::open(path) {
        Ok(file) => {
            crate::fd::available();
            Ok(file)
        }
        Err(e) => {
            if crate::fd::is_exhaustion(&e) {
                crate::fd::exhausted(crate::fd::During::Open, &e);
            }
            Err(io(path)(e))
        }
    }
}

/// `len` bytes at `at` + `skip` of the open segment `file`, checked against `checksums`
/// (see [`Segments::read`]).
fn read_checked(
    file: &File,
    path: &Path,
    at: Location,
    skip: u64,
    len: usize,
    checksums: &[u32],
) -> Result<Vec<u8>, SegmentError> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, at.offset + skip)
        .map_err(io(path))?;
    if checksums.is_empty() {
        return Ok(buf);
    }
    let first = skip / CHECK_BLOCK as u64;
    for (i, block) in buf.chunks(CHECK_BLOCK).enumerate() {
        let n = first + i as u64;
        let found = crc32fast::hash(block);
        // A block without a checksum (a length the record does not match) is as wrong as
        // a mismatch: the record and the bytes disagree.
        let expected = usize::try_from(n)
            .ok()
            .and_then(|n| checksums.get(n).copied());
        if !skip.is_multiple_of(CHECK_BLOCK as u64) || expected != Some(found) {
            return Err(SegmentError::Corrupt {
                file: path.to_path_buf(),
                segment: at.segment,
                offset: at.offset,
                block: u32::try_from(n).unwrap_or(u32::MAX),
                len: block.len(),
                expected: expected.unwrap_or(0),
                found,
            });
        }
    }
    Ok(buf)
}

/// One payload read block after block from its segment file, opened once
/// ([`Segments::reader`]): a delivery of a large document reads each 1 MiB frame without
/// opening the file again. Reads are positioned, so the segment's appends go on meanwhile.
pub struct PayloadReader {
    file: File,
    path: PathBuf,
    at: Location,
    checksums: Vec<u32>,
}

impl PayloadReader {
    /// `len` bytes of the payload from `skip`, checked as [`Segments::read`] checks them.
    pub fn read(&self, skip: u64, len: usize) -> Result<Vec<u8>, SegmentError> {
        read_checked(&self.file, &self.path, self.at, skip, len, &self.checksums)
    }
}

/// Payloads found corrupt since the process started, each remembered once, so that whoever
/// finds one logs it and counts it the first time only (a document read again and again is one
/// fault, not one per read).
pub struct Damaged<K> {
    seen: Mutex<HashSet<K>>,
}

impl<K> Default for Damaged<K> {
    fn default() -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
        }
    }
}

impl<K: Hash + Eq> Damaged<K> {
    /// Remember `key`; whether it is new (then log it).
    pub fn note(&self, key: K) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    /// How many were found.
    pub fn count(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_come_back_across_segments_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Segments::open(dir.path()).unwrap();
        let a = s.append(b"first payload").unwrap().at;
        let b = s.append(b"second").unwrap().at;
        assert_eq!(
            a,
            Location {
                segment: 1,
                offset: 0
            }
        );
        assert_eq!(b.offset, 13);
        s.sync().unwrap();
        assert_eq!(s.read(b, 0, 6, &[]).unwrap(), b"second");
        assert_eq!(s.read(a, 6, 7, &[]).unwrap(), b"payload");
        drop(s);
        let s = Segments::open(dir.path()).unwrap();
        let c = s.append(b"third").unwrap().at;
        assert_eq!(c.offset, 19, "appends go on after a reopen");
        assert!(
            s.read(c, 0, 6, &[]).is_err(),
            "reading past the end is an error"
        );
        let copy = tempfile::tempdir().unwrap();
        s.sync().unwrap();
        assert_eq!(s.copy_to(copy.path()).unwrap(), 24);
        let s2 = Segments::open(copy.path()).unwrap();
        assert_eq!(s2.read(a, 0, 13, &[]).unwrap(), b"first payload");
    }

    #[test]
    fn a_flipped_byte_fails_its_block_checksum_and_names_where() {
        let dir = tempfile::tempdir().unwrap();
        let s = Segments::open(dir.path()).unwrap();
        s.append(b"before").unwrap();
        let payload: Vec<u8> = (0..CHECK_BLOCK * 2 + 10).map(|i| i as u8).collect();
        let placed = s.append(&payload).unwrap();
        assert_eq!(
            placed.checksums.len(),
            3,
            "one per block, the last one short"
        );
        s.sync().unwrap();
        let whole = s.read(placed.at, 0, payload.len(), &placed.checksums);
        assert_eq!(whole.unwrap(), payload);
        // Flip one byte in the second block, on disk.
        let file = s.segment_file(1);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[6 + CHECK_BLOCK + 7] ^= 0x20;
        std::fs::write(&file, bytes).unwrap();
        let first = s.read(placed.at, 0, CHECK_BLOCK, &placed.checksums);
        assert_eq!(
            first.unwrap(),
            &payload[..CHECK_BLOCK],
            "the first block is intact"
        );
        let second = s.read(
            placed.at,
            CHECK_BLOCK as u64,
            CHECK_BLOCK,
            &placed.checksums,
        );
        match second {
            Err(SegmentError::Corrupt {
                segment: 1,
                offset: 6,
                block: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let err = s
            .read(placed.at, 0, payload.len(), &placed.checksums)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("seg-000001.bin") && err.contains("offset 6") && err.contains("block 1"),
            "{err}"
        );
        // Without checksums (a payload from before them) the bytes come back unchecked.
        assert_eq!(
            s.read(placed.at, 0, payload.len(), &[]).unwrap().len(),
            payload.len()
        );
        let damaged = Damaged::default();
        assert!(damaged.note(7u64));
        assert!(!damaged.note(7u64), "remembered once");
        assert_eq!(damaged.count(), 1);
    }

    #[test]
    fn a_reader_keeps_its_segment_open_and_checks_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let s = Segments::open(dir.path()).unwrap();
        s.append(b"before").unwrap();
        let payload: Vec<u8> = (0..CHECK_BLOCK * 2 + 10).map(|i| (i % 251) as u8).collect();
        let placed = s.append(&payload).unwrap();
        s.sync().unwrap();
        let reader = s.reader(placed.at, placed.checksums.clone()).unwrap();
        // The file is open: removing its name does not stop the reads.
        let file = s.segment_file(1);
        let bytes = std::fs::read(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(
            s.read(placed.at, 0, CHECK_BLOCK, &placed.checksums)
                .is_err(),
            "a read that opens the file finds it gone"
        );
        let mut read = Vec::new();
        for block in 0..3u64 {
            let skip = block * CHECK_BLOCK as u64;
            let len = (payload.len() as u64 - skip).min(CHECK_BLOCK as u64) as usize;
            read.extend(reader.read(skip, len).unwrap());
        }
        assert_eq!(read, payload);
        // A damaged block is refused by a reader too, naming where.
        let mut damaged = bytes;
        damaged[6 + 2 * CHECK_BLOCK + 3] ^= 0x01;
        std::fs::write(&file, damaged).unwrap();
        let reader = s.reader(placed.at, placed.checksums.clone()).unwrap();
        assert_eq!(
            reader.read(0, CHECK_BLOCK).unwrap(),
            &payload[..CHECK_BLOCK]
        );
        match reader.read(2 * CHECK_BLOCK as u64, 10) {
            Err(SegmentError::Corrupt {
                segment: 1,
                offset: 6,
                block: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(
            s.reader(
                Location {
                    segment: 9,
                    offset: 0
                },
                Vec::new()
            )
            .is_err(),
            "a segment that does not exist cannot be opened"
        );
    }
}
