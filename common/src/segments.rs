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
//! Plain files and `std` only: the one piece of storage the two stores share.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Errors name the file.
pub type SegmentError = std::io::Error;

/// A segment is closed for writing once it holds this many bytes.
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// The folder, inside the store's folder.
pub const FOLDER: &str = "payload-segments";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
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
    pub fn append(&self, payload: &[u8]) -> Result<Location, SegmentError> {
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

    /// `len` bytes at `at` + `skip`.
    pub fn read(&self, at: Location, skip: u64, len: usize) -> Result<Vec<u8>, SegmentError> {
        let path = segment_path(&self.dir, at.segment);
        let file = File::open(&path).map_err(io(&path))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, at.offset + skip)
            .map_err(io(&path))?;
        Ok(buf)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_come_back_across_segments_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Segments::open(dir.path()).unwrap();
        let a = s.append(b"first payload").unwrap();
        let b = s.append(b"second").unwrap();
        assert_eq!(
            a,
            Location {
                segment: 1,
                offset: 0
            }
        );
        assert_eq!(b.offset, 13);
        s.sync().unwrap();
        assert_eq!(s.read(b, 0, 6).unwrap(), b"second");
        assert_eq!(s.read(a, 6, 7).unwrap(), b"payload");
        drop(s);
        let s = Segments::open(dir.path()).unwrap();
        let c = s.append(b"third").unwrap();
        assert_eq!(c.offset, 19, "appends go on after a reopen");
        assert!(s.read(c, 0, 6).is_err(), "reading past the end is an error");
        let copy = tempfile::tempdir().unwrap();
        s.sync().unwrap();
        assert_eq!(s.copy_to(copy.path()).unwrap(), 24);
        let s2 = Segments::open(copy.path()).unwrap();
        assert_eq!(s2.read(a, 0, 13).unwrap(), b"first payload");
    }
}
