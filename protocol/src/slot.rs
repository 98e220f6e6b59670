//! Shared-memory frame slots: a 64-byte header followed by the pixels, in a file mapped by both
//! the client (which creates it) and the daemon (which maps it by path and works in place).
//!
//! Header layout (all little-endian):
//! `0 magic "FSLT" | 4 layout u32 | 8 width u32 | 12 height u32 | 16 stride u32 (bytes/row)
//! | 20 format u32 | 24 capacity u64 (pixel bytes) | 32 content hash u64 | 40..64 reserved`
//!
//! The content hash (layout 2) is the xxh3-64 of the little-endian xxh3-64 digests of the
//! frame's row groups in order: whole rows, [`rows_per_hash_chunk`] of them, the last group
//! shorter. Groups hash independently, so a side with several cores verifies and seals a frame
//! on all of them; one xxh3 stream over the frame (layout 1) kept that to one core.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::ProtocolError;
use crate::stream_copy::{copy_for, fence};

/// Bytes before the pixels.
pub const HEADER_LEN: usize = 64;
const SLOT_MAGIC: [u8; 4] = *b"FSLT";
const LAYOUT_VERSION: u32 = 2;
const NAME_PREFIX: &str = "slot-";
const NAME_SUFFIX: &str = ".fsslot";
/// Copy-then-hash granule: small enough to stay in L2 between the copy and the hash.
const HASH_CHUNK: usize = 256 * 1024;
/// Copy-then-hash granule inside a row group (64 KiB measured fastest of 2–64 KiB).
const COPY_PIECE: usize = 64 * 1024;

/// Rows per hashed group for rows `stride` bytes apart: as many whole rows as fit in 256 KiB,
/// at least one.
pub fn rows_per_hash_chunk(stride: usize) -> usize {
    (HASH_CHUNK / stride.max(1)).max(1)
}

/// Bytes per hashed row group for rows `stride` bytes apart.
fn hash_group_len(stride: usize) -> usize {
    rows_per_hash_chunk(stride) * stride.max(1)
}

/// Pixel layouts an OFX host hands us (always RGBA; components per the host's bit depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelFormat {
    /// 8-bit unsigned per channel.
    Rgba8,
    /// 16-bit unsigned per channel.
    Rgba16,
    /// IEEE half float per channel.
    RgbaF16,
    /// IEEE single float per channel.
    RgbaF32,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgba8 => 4,
            PixelFormat::Rgba16 | PixelFormat::RgbaF16 => 8,
            PixelFormat::RgbaF32 => 16,
        }
    }

    fn code(self) -> u32 {
        match self {
            PixelFormat::Rgba8 => 1,
            PixelFormat::Rgba16 => 2,
            PixelFormat::RgbaF16 => 3,
            PixelFormat::RgbaF32 => 4,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            1 => PixelFormat::Rgba8,
            2 => PixelFormat::Rgba16,
            3 => PixelFormat::RgbaF16,
            4 => PixelFormat::RgbaF32,
            _ => return None,
        })
    }
}

/// The validated header of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotHeader {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from one row to the next (≥ width × bytes per pixel).
    pub stride: u32,
    /// Pixel layout.
    pub format: PixelFormat,
    /// [`content_hash`] of the `stride × height` pixel bytes, as sealed by the writer.
    pub content_hash: u64,
}

impl SlotHeader {
    /// Bytes the frame occupies.
    pub fn frame_len(&self) -> usize {
        self.stride as usize * self.height as usize
    }
}

/// Content hash of a frame's `bytes`, rows `stride` apart (see the module doc), its row groups
/// hashed on all cores.
pub fn content_hash(bytes: &[u8], stride: usize) -> u64 {
    let digests: Vec<u64> = bytes
        .par_chunks(hash_group_len(stride))
        .map(xxh3_64)
        .collect();
    combine_digests(&digests)
}

/// The frame hash from its row groups' digests, in order.
fn combine_digests(digests: &[u64]) -> u64 {
    let bytes: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
    xxh3_64(&bytes)
}

/// A mapped frame slot. The creator's handle deletes the file when dropped.
pub struct FrameSlot {
    path: PathBuf,
    map: MmapMut,
    owned: bool,
}

static SLOT_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FrameSlot {
    /// Creates a slot file in `dir` (owner-only) able to hold `capacity` pixel bytes.
    pub fn create(dir: &Path, capacity: usize) -> Result<Self, ProtocolError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{NAME_PREFIX}{}-{}-{nanos}{NAME_SUFFIX}",
            std::process::id(),
            SLOT_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path)?;
        file.set_len((HEADER_LEN + capacity) as u64)?;
        // SAFETY: the file is ours, in an owner-only folder, and sized before mapping; the daemon
        // writes into it only while we wait for its reply.
        let map = unsafe { MmapMut::map_mut(&file) }?;
        let mut slot = FrameSlot {
            path,
            map,
            owned: true,
        };
        slot.map[0..4].copy_from_slice(&SLOT_MAGIC);
        slot.put_u32(4, LAYOUT_VERSION);
        slot.put_u64(24, capacity as u64);
        Ok(slot)
    }

    /// Maps an existing slot by path, refusing anything that is not a slot file directly inside
    /// `slot_dir`, owned by this user, with a sane header.
    pub fn open(path: &Path, slot_dir: &Path) -> Result<Self, ProtocolError> {
        let bad = |why: String| ProtocolError::Slot(format!("{}: {why}", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("not a slot file name".into()))?;
        if !name.starts_with(NAME_PREFIX) || !name.ends_with(NAME_SUFFIX) {
            return Err(bad("not a slot file name".into()));
        }
        let parent = path
            .parent()
            .ok_or_else(|| bad("no parent folder".into()))?;
        let same_dir = parent.canonicalize().map_err(|e| bad(e.to_string()))?
            == slot_dir.canonicalize().map_err(|e| bad(e.to_string()))?;
        if !same_dir {
            return Err(bad(format!(
                "outside the slot folder {}",
                slot_dir.display()
            )));
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| bad(e.to_string()))?;
        if !meta.file_type().is_file() {
            return Err(bad("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: getuid has no preconditions and cannot fail.
            if meta.uid() != unsafe { libc::getuid() } {
                return Err(bad("owned by another user".into()));
            }
        }
        if (meta.len() as usize) < HEADER_LEN {
            return Err(bad("shorter than a slot header".into()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| bad(e.to_string()))?;
        // SAFETY: the file is a regular file owned by this user in the owner-only slot folder; its
        // bytes are treated as untrusted and validated before use.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| bad(e.to_string()))?;
        let slot = FrameSlot {
            path: path.to_path_buf(),
            map,
            owned: false,
        };
        if slot.map[0..4] != SLOT_MAGIC || slot.get_u32(4) != LAYOUT_VERSION {
            return Err(bad("bad slot magic or layout version".into()));
        }
        if slot.get_u64(24) != (slot.map.len() - HEADER_LEN) as u64 {
            return Err(bad("capacity does not match the file size".into()));
        }
        Ok(slot)
    }

    /// The slot file's path, which clients send in [`crate::Request::ProcessFrame`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pixel bytes this slot can hold.
    pub fn capacity(&self) -> usize {
        self.map.len() - HEADER_LEN
    }

    /// Declares the frame that follows: packed rows (`stride = width × bpp`). Returns the pixel
    /// area to fill, then call [`FrameSlot::seal`].
    pub fn begin_frame(
        &mut self,
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<&mut [u8], ProtocolError> {
        let stride = (width as usize)
            .checked_mul(format.bytes_per_pixel())
            .filter(|s| *s <= u32::MAX as usize)
            .ok_or_else(|| ProtocolError::Slot("row too wide".into()))?;
        let len = stride
            .checked_mul(height as usize)
            .filter(|l| *l <= self.capacity())
            .ok_or_else(|| {
                ProtocolError::Slot(format!(
                    "{width}x{height} {format:?} does not fit in a {}-byte slot",
                    self.capacity()
                ))
            })?;
        self.put_u32(8, width);
        self.put_u32(12, height);
        self.put_u32(16, stride as u32);
        self.put_u32(20, format.code());
        self.put_u64(32, 0);
        Ok(&mut self.map[HEADER_LEN..HEADER_LEN + len])
    }

    /// Copies rows of `row_bytes` each from `src` (rows `src_stride` apart) into a frame begun
    /// with [`FrameSlot::begin_frame`], then seals it. Returns the content hash.
    pub fn write_rows(
        &mut self,
        width: u32,
        height: u32,
        format: PixelFormat,
        src: &[u8],
        src_stride: usize,
    ) -> Result<u64, ProtocolError> {
        let row = width as usize * format.bytes_per_pixel();
        let needed = (height as usize).saturating_sub(1) * src_stride + row;
        if height > 0 && (src_stride < row || src.len() < needed) {
            return Err(ProtocolError::Slot(
                "source image smaller than its declared size".into(),
            ));
        }
        let dst = self.begin_frame(width, height, format)?;
        // Hash each piece of the source right after copying it, while it is in cache: a separate
        // hashing pass re-reads the whole frame from memory (1.88x -> see BENCHMARKS.md). One
        // core: this side runs on the editor's render thread.
        let copy = copy_for(dst.len());
        let (rows, group_len) = (rows_per_hash_chunk(row), hash_group_len(row));
        let mut digests = Vec::with_capacity(dst.len().div_ceil(group_len));
        for (g, group) in dst.chunks_mut(group_len).enumerate() {
            let first = g * rows * src_stride;
            let mut hasher = Xxh3::new();
            if src_stride == row {
                let from = &src[first..first + group.len()];
                for (d, s) in group.chunks_mut(COPY_PIECE).zip(from.chunks(COPY_PIECE)) {
                    copy(d, s);
                    hasher.update(s);
                }
            } else {
                for (y, out) in group.chunks_exact_mut(row).enumerate() {
                    let from = &src[first + y * src_stride..][..row];
                    copy(out, from);
                    hasher.update(from);
                }
            }
            digests.push(hasher.digest());
        }
        fence();
        let hash = combine_digests(&digests);
        self.put_u64(32, hash);
        Ok(hash)
    }

    /// Computes the content hash of the current frame and stores it in the header.
    pub fn seal(&mut self) -> Result<u64, ProtocolError> {
        let h = self.header_unchecked_hash()?;
        let hash = content_hash(
            &self.map[HEADER_LEN..HEADER_LEN + h.frame_len()],
            h.stride as usize,
        );
        self.put_u64(32, hash);
        Ok(hash)
    }

    /// Verifies the frame's content hash, runs `transform` over its pixels in place and seals
    /// the result, in one pass over memory on all cores: each row group (256 KiB, fits L2) is
    /// hashed as read, transformed and hashed as written while it is in cache (verify, transform and seal as
    /// three passes read the frame from memory three times; shm_roundtrip bench). `transform`
    /// gets runs of whole pixels, never row padding. On a hash mismatch the pixels are already
    /// transformed but the slot stays unsealed, so the frame still reads as damaged.
    pub fn transform_sealed(
        &mut self,
        transform: impl Fn(&mut [u8]) + Sync,
    ) -> Result<SlotHeader, ProtocolError> {
        let mut h = self.header()?;
        let row = h.width as usize * h.format.bytes_per_pixel();
        let stride = h.stride as usize;
        let group_len = hash_group_len(stride);
        let px = self.pixels_mut(&h);
        let (read, written): (Vec<u64>, Vec<u64>) = px
            .par_chunks_mut(group_len)
            .map(|group| {
                let read = xxh3_64(group);
                if stride == row {
                    transform(group);
                } else {
                    for line in group.chunks_mut(stride) {
                        let pixels = line.len().min(row);
                        transform(&mut line[..pixels]);
                    }
                }
                (read, xxh3_64(group))
            })
            .unzip();
        let actual = combine_digests(&read);
        if actual != h.content_hash {
            return Err(ProtocolError::Slot(format!(
                "content hash mismatch (header {:016x}, pixels {actual:016x}): the frame was \
                 changed or not fully written",
                h.content_hash
            )));
        }
        h.content_hash = combine_digests(&written);
        self.put_u64(32, h.content_hash);
        Ok(h)
    }

    /// The header, validated against the slot's size.
    pub fn header(&self) -> Result<SlotHeader, ProtocolError> {
        let mut h = self.header_unchecked_hash()?;
        h.content_hash = self.get_u64(32);
        Ok(h)
    }

    fn header_unchecked_hash(&self) -> Result<SlotHeader, ProtocolError> {
        let width = self.get_u32(8);
        let height = self.get_u32(12);
        let stride = self.get_u32(16);
        let format = PixelFormat::from_code(self.get_u32(20)).ok_or_else(|| {
            ProtocolError::Slot(format!("unknown pixel format {}", self.get_u32(20)))
        })?;
        let h = SlotHeader {
            width,
            height,
            stride,
            format,
            content_hash: 0,
        };
        if (stride as usize) < width as usize * format.bytes_per_pixel() {
            return Err(ProtocolError::Slot(format!(
                "stride {stride} shorter than a {width}-pixel row"
            )));
        }
        if h.frame_len() > self.capacity() {
            return Err(ProtocolError::Slot(format!(
                "{width}x{height} frame overruns the {}-byte slot",
                self.capacity()
            )));
        }
        Ok(h)
    }

    /// Validates the header and checks the content hash against the pixels.
    pub fn verify(&self) -> Result<SlotHeader, ProtocolError> {
        let h = self.header()?;
        let actual = content_hash(self.pixels(&h), h.stride as usize);
        if actual != h.content_hash {
            return Err(ProtocolError::Slot(format!(
                "content hash mismatch (header {:016x}, pixels {actual:016x}): the frame was \
                 changed or not fully written",
                h.content_hash
            )));
        }
        Ok(h)
    }

    /// The frame's bytes for a header returned by [`FrameSlot::header`].
    pub fn pixels(&self, h: &SlotHeader) -> &[u8] {
        &self.map[HEADER_LEN..HEADER_LEN + h.frame_len()]
    }

    /// The frame's bytes, writable.
    pub fn pixels_mut(&mut self, h: &SlotHeader) -> &mut [u8] {
        &mut self.map[HEADER_LEN..HEADER_LEN + h.frame_len()]
    }

    /// Copies the frame out into `dst` (rows `dst_stride` apart).
    pub fn read_rows(
        &self,
        dst: &mut [u8],
        dst_stride: usize,
    ) -> Result<SlotHeader, ProtocolError> {
        let h = self.header()?;
        let row = h.width as usize * h.format.bytes_per_pixel();
        let needed = (h.height as usize).saturating_sub(1) * dst_stride + row;
        if h.height > 0 && (dst_stride < row || dst.len() < needed) {
            return Err(ProtocolError::Slot(
                "destination image smaller than the frame".into(),
            ));
        }
        let src = self.pixels(&h);
        let copy = copy_for(src.len());
        if dst_stride == row && h.stride as usize == row {
            copy(&mut dst[..src.len()], src);
        } else {
            for y in 0..h.height as usize {
                let s = y * h.stride as usize;
                copy(&mut dst[y * dst_stride..][..row], &src[s..s + row]);
            }
        }
        fence();
        Ok(h)
    }

    fn get_u32(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.map[at..at + 4]);
        u32::from_le_bytes(b)
    }

    fn get_u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.map[at..at + 8]);
        u64::from_le_bytes(b)
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        self.map[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(&mut self, at: usize, v: u64) {
        self.map[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

impl Drop for FrameSlot {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_copy::STREAMING_MIN_FRAME;

    #[test]
    fn create_write_open_verify_and_modify() {
        let dir = tempfile::tempdir().unwrap();
        let mut slot = FrameSlot::create(dir.path(), 4 * 4 * 3).unwrap();
        let src: Vec<u8> = (0..(4 * 4 * 3 + 8) as u8).collect();
        // Source rows padded to 20 bytes: only 16 are copied per row.
        let hash = slot.write_rows(4, 3, PixelFormat::Rgba8, &src, 20).unwrap();

        let mut peer = FrameSlot::open(slot.path(), dir.path()).unwrap();
        let h = peer.verify().unwrap();
        assert_eq!(
            (h.width, h.height, h.stride, h.content_hash),
            (4, 3, 16, hash)
        );
        assert_eq!(&peer.pixels(&h)[16..32], &src[20..36]);
        peer.pixels_mut(&h)[0] = 99;
        assert!(
            slot.verify().is_err(),
            "a changed pixel must break the hash"
        );
        let mut out = vec![0u8; 3 * 24];
        slot.read_rows(&mut out, 24).unwrap();
        assert_eq!(out[0], 99);
        assert_eq!(&out[24..40], &src[20..36]);
        let path = slot.path().to_path_buf();
        drop(peer);
        drop(slot);
        assert!(!path.exists(), "the creator removes its slot file");
    }

    #[test]
    fn open_refuses_paths_outside_the_slot_dir_and_bad_headers() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let slot = FrameSlot::create(other.path(), 64).unwrap();
        assert!(FrameSlot::open(slot.path(), dir.path()).is_err());
        let fake = dir.path().join("slot-1-1-1.fsslot");
        std::fs::write(&fake, vec![0u8; 200]).unwrap();
        assert!(FrameSlot::open(&fake, dir.path()).is_err());
        assert!(FrameSlot::open(&dir.path().join("../etc/passwd"), dir.path()).is_err());
    }

    /// The layout-2 content hash spelled out: xxh3 of the row groups' little-endian xxh3s.
    fn hash_as_documented(frame: &[u8], stride: usize) -> u64 {
        let group = (256 * 1024 / stride).max(1) * stride;
        let digests: Vec<u8> = frame
            .chunks(group)
            .flat_map(|g| xxh3_64(g).to_le_bytes())
            .collect();
        xxh3_64(&digests)
    }

    #[test]
    fn fused_copy_hash_matches_the_documented_hash_for_small_and_streamed_frames() {
        let dir = tempfile::tempdir().unwrap();
        // Several row groups with a ragged tail; the second frame is over STREAMING_MIN_FRAME
        // and goes through the streaming copies, once from packed and once from padded rows.
        for (w, h, pad) in [(300u32, 257u32, 0usize), (1030, 1031, 0), (1030, 1031, 40)] {
            let row = w as usize * 16;
            let stride = row + pad;
            let src: Vec<u8> = (0..stride * h as usize)
                .map(|i| (i * 7 % 253) as u8)
                .collect();
            let packed: Vec<u8> = src
                .chunks(stride)
                .flat_map(|r| &r[..row])
                .copied()
                .collect();
            let mut slot = FrameSlot::create(dir.path(), packed.len()).unwrap();
            let hash = slot
                .write_rows(w, h, PixelFormat::RgbaF32, &src, stride)
                .unwrap();
            assert_eq!(hash, hash_as_documented(&packed, row), "{w}x{h} pad {pad}");
            assert_eq!(slot.verify().unwrap().content_hash, hash);
            let mut out = vec![0u8; src.len()];
            slot.read_rows(&mut out, stride).unwrap();
            let back: Vec<u8> = out
                .chunks(stride)
                .flat_map(|r| &r[..row])
                .copied()
                .collect();
            assert!(
                back == packed,
                "{w}x{h} pad {pad}: the frame came back changed"
            );
        }
        const { assert!(1030 * 1031 * 16 >= STREAMING_MIN_FRAME) };
    }

    #[test]
    fn transform_sealed_equals_verify_transform_seal_and_catches_a_damaged_frame() {
        let dir = tempfile::tempdir().unwrap();
        let negate = |px: &mut [u8]| px.iter_mut().for_each(|b| *b = !*b);
        // Contiguous rows over several chunks, and padded rows.
        for (w, h, stride) in [(300u32, 200u32, 300 * 16), (33, 7, 33 * 16 + 40)] {
            let src: Vec<u8> = (0..stride * h as usize)
                .map(|i| (i * 7 % 251) as u8)
                .collect();
            let mut fused = FrameSlot::create(dir.path(), stride * h as usize).unwrap();
            let mut apart = FrameSlot::create(dir.path(), stride * h as usize).unwrap();
            for slot in [&mut fused, &mut apart] {
                // A writer may pad its rows: the header's stride says so.
                slot.begin_frame(w, h, PixelFormat::RgbaF32).unwrap();
                slot.put_u32(16, stride as u32);
                let hd = slot.header().unwrap();
                slot.pixels_mut(&hd).copy_from_slice(&src);
                slot.seal().unwrap();
            }
            let got = fused.transform_sealed(negate).unwrap();
            let hd = apart.verify().unwrap();
            let row = w as usize * 16;
            for line in apart.pixels_mut(&hd).chunks_mut(stride) {
                negate(&mut line[..row]);
            }
            let sealed = apart.seal().unwrap();
            assert_eq!(sealed, hash_as_documented(apart.pixels(&hd), stride));
            assert_eq!(got.content_hash, sealed);
            assert_eq!(fused.pixels(&got), apart.pixels(&hd));
            assert_eq!(fused.verify().unwrap().content_hash, sealed);
        }
        // A byte changed after sealing: refused, and the frame stays unverifiable.
        let mut slot = FrameSlot::create(dir.path(), 64 * 16).unwrap();
        slot.write_rows(8, 8, PixelFormat::RgbaF32, &[3u8; 64 * 16], 8 * 16)
            .unwrap();
        let h = slot.header().unwrap();
        slot.pixels_mut(&h)[5] ^= 1;
        let e = slot.transform_sealed(negate).unwrap_err().to_string();
        assert!(e.contains("content hash mismatch"), "{e}");
        assert!(slot.verify().is_err());
    }

    #[test]
    fn oversize_frames_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut slot = FrameSlot::create(dir.path(), 100).unwrap();
        assert!(slot.begin_frame(10, 10, PixelFormat::RgbaF32).is_err());
        assert!(slot.begin_frame(u32::MAX, 2, PixelFormat::RgbaF32).is_err());
    }
}
