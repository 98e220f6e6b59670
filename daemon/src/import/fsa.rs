//! faceswap's alignments file (`.fsa`, `lib/align/alignments.py`): a zlib-compressed pickle of
//! `{"__meta__": {"version": 2.x}, "__data__": {frame name: {"faces": [face, …], …}}}` (older
//! files hold the frame dict at the top level). Each face has `x, y, w, h`, `landmarks_xy`
//! (68 × 2) and `mask` (`{name: {"mask": zlib bytes, "affine_matrix": 2×3, "stored_size": N,
//! …}}`); other keys (identity, thumb, video_meta) are ignored.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_pickle::{DeOptions, HashableValue, Value};

use super::dfl::{get, matrix, numpy};
use crate::faceset::face::Face;
use crate::faceset::store::{Alignments, FrameEntry, StoredFace};
use crate::geometry::Affine;
use crate::masks::StoredMask;
use crate::masks::plane::Plane;

/// A faceswap alignments file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct FsaFile {
    /// The `__meta__` version (None for files older than 2.1, which have no meta).
    pub version: Option<f64>,
    /// Frame name → its faces.
    pub frames: BTreeMap<String, Vec<FsaFace>>,
}

/// One face of a faceswap alignments file.
#[derive(Debug, Clone, PartialEq)]
pub struct FsaFace {
    /// Detection box `[x, y, w, h]`.
    pub rect: [f64; 4],
    /// 68 landmarks in frame pixels.
    pub landmarks: Vec<[f64; 2]>,
    /// Masks by name, as stored masks.
    pub masks: BTreeMap<String, StoredMask>,
}

/// Reads a `.fsa` file; errors name the file and what is wrong.
pub fn read_fsa(path: &Path) -> Result<FsaFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[..])
        .read_to_end(&mut raw)
        .map_err(|e| {
            format!(
                "{} is not a faceswap alignments file (not zlib-compressed: {e}); pass the .fsa faceswap wrote",
                path.display()
            )
        })?;
    parse(&raw).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(raw: &[u8]) -> Result<FsaFile, String> {
    let top = serde_pickle::value_from_slice(
        raw,
        DeOptions::new()
            .replace_unresolved_globals()
            .replace_recursive_structures(),
    )
    .map_err(|e| format!("not a readable pickle: {e}"))?;
    let Value::Dict(top) = top else {
        return Err("the alignments are not a dict".into());
    };
    let version = match get(&top, "__meta__") {
        Some(Value::Dict(meta)) => match get(meta, "version") {
            Some(Value::F64(v)) => Some(*v),
            Some(Value::I64(v)) => Some(*v as f64),
            _ => None,
        },
        _ => None,
    };
    let data = match get(&top, "__data__") {
        Some(Value::Dict(d)) => d,
        Some(_) => return Err("__data__ is not a dict".into()),
        None => &top,
    };
    let mut frames = BTreeMap::new();
    for (key, value) in data {
        let name = match key {
            HashableValue::String(s) => s.clone(),
            HashableValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        if name == "__meta__" {
            continue;
        }
        let faces = match value {
            Value::Dict(frame) => match get(frame, "faces") {
                Some(Value::List(faces)) => faces,
                _ => return Err(format!("frame {name} has no faces list")),
            },
            // Version 1 files: the frame's value is the face list.
            Value::List(faces) => faces,
            _ => return Err(format!("frame {name} is neither a dict nor a list")),
        };
        let faces = faces
            .iter()
            .enumerate()
            .map(|(k, f)| face(f).map_err(|e| format!("frame {name}, face {k}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        frames.insert(name, faces);
    }
    Ok(FsaFile { version, frames })
}

fn face(v: &Value) -> Result<FsaFace, String> {
    let Value::Dict(d) = v else {
        return Err("not a dict".into());
    };
    let num = |key: &str| match get(d, key) {
        Some(Value::F64(x)) => Ok(*x),
        Some(Value::I64(x)) => Ok(*x as f64),
        _ => Err(format!("no number {key}")),
    };
    let rect = [num("x")?, num("y")?, num("w")?, num("h")?];
    let landmarks: Vec<[f64; 2]> = matrix(get(d, "landmarks_xy").ok_or("no landmarks_xy")?)
        .map_err(|e| format!("landmarks_xy: {e}"))?
        .into_iter()
        .filter_map(|r| (r.len() == 2).then(|| [r[0], r[1]]))
        .collect();
    if landmarks.len() != 68 {
        return Err(format!("{} landmarks, expected 68", landmarks.len()));
    }
    let mut masks = BTreeMap::new();
    if let Some(Value::Dict(all)) = get(d, "mask") {
        for (name, m) in all {
            let HashableValue::String(name) = name else {
                continue;
            };
            let Value::Dict(m) = m else {
                return Err(format!("mask {name} is not a dict"));
            };
            masks.insert(
                name.clone(),
                mask(m).map_err(|e| format!("mask {name}: {e}"))?,
            );
        }
    }
    Ok(FsaFace {
        rect,
        landmarks,
        masks,
    })
}

/// faceswap keeps a mask as zlib-compressed `stored_size²` bytes with the frame → mask matrix.
fn mask(m: &BTreeMap<HashableValue, Value>) -> Result<StoredMask, String> {
    let size = match get(m, "stored_size") {
        Some(Value::I64(n)) if *n > 0 && *n <= 4096 => *n as usize,
        None => 128,
        _ => return Err("bad stored_size".into()),
    };
    let compressed = match get(m, "mask") {
        Some(Value::Bytes(b)) => b.clone(),
        Some(other) => numpy(other)
            .map(|(_, raw)| raw)
            .ok_or("mask is not bytes")?,
        None => return Err("no mask data".into()),
    };
    let mut bytes = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .read_to_end(&mut bytes)
        .map_err(|e| format!("mask data is not zlib: {e}"))?;
    if bytes.len() != size * size {
        return Err(format!("{} bytes for a {size}² mask", bytes.len()));
    }
    let rows = matrix(get(m, "affine_matrix").ok_or("no affine_matrix")?)?;
    let matrix = match &rows[..] {
        [a, b, ..] if a.len() == 3 && b.len() == 3 => {
            Affine([[a[0], a[1], a[2]], [b[0], b[1], b[2]]])
        }
        _ => return Err("affine_matrix is not 2×3".into()),
    };
    let plane = Plane {
        width: size,
        height: size,
        data: bytes.iter().map(|b| *b as f32 / 255.0).collect(),
    };
    Ok(StoredMask::new(&plane, matrix))
}

/// How a source numbers its frames: a folder's images by name, or a video's frames.
pub enum FrameNumbering {
    /// Image file name → its position in the folder.
    Folder(std::collections::HashMap<String, u64>),
    /// faceswap names a video's frames `<stem>_NNNNNN.png`, counting from 1.
    Video,
}

impl FrameNumbering {
    /// The numbering of a source whose folder images are `folder_files` (empty: a video).
    pub fn of(folder_files: &[std::path::PathBuf]) -> FrameNumbering {
        if folder_files.is_empty() {
            return FrameNumbering::Video;
        }
        FrameNumbering::Folder(
            folder_files
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    Some((p.file_name()?.to_string_lossy().into_owned(), i as u64))
                })
                .collect(),
        )
    }

    /// The frame index of a faceswap frame name (`clip_000001.png` is video frame 0).
    pub fn index(&self, name: &str) -> Option<u64> {
        match self {
            FrameNumbering::Folder(by_name) => by_name.get(name).copied(),
            FrameNumbering::Video => {
                let stem = Path::new(name).file_stem()?.to_string_lossy().into_owned();
                let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                stem[stem.len() - digits..]
                    .parse::<u64>()
                    .ok()?
                    .checked_sub(1)
            }
        }
    }
}

/// An alignments store for `source` from a faceswap alignments file: every face with its
/// landmarks, box and masks. Frames the source does not have are reported, not guessed.
pub fn store_from_fsa(
    fsa: &FsaFile,
    info: crate::faceset::store::SourceInfo,
    folder_files: &[std::path::PathBuf],
) -> (Alignments, Vec<String>) {
    let mut store = Alignments::new(info);
    let mut skipped = Vec::new();
    let numbering = FrameNumbering::of(folder_files);
    for (name, faces) in &fsa.frames {
        let Some(index) = numbering.index(name) else {
            skipped.push(format!(
                "frame {name}: not a frame of {}",
                store.source.path
            ));
            continue;
        };
        let faces = faces
            .iter()
            .map(|f| {
                let mut lm = [[0.0; 2]; 68];
                lm.copy_from_slice(&f.landmarks);
                let [x, y, w, h] = f.rect;
                StoredFace {
                    masks: f.masks.clone(),
                    ..StoredFace::new(Face::from_landmarks([x, y, x + w, y + h], &lm))
                }
            })
            .collect();
        store.frames.insert(
            index,
            FrameEntry {
                name: name.clone(),
                pts: None,
                faces,
            },
        );
    }
    (store, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_map_to_indices() {
        let video = FrameNumbering::of(&[]);
        assert_eq!(video.index("clip_000001.png"), Some(0));
        assert_eq!(video.index("my clip_000473.png"), Some(472));
        assert_eq!(video.index("clip.png"), None);
        assert_eq!(
            video.index("clip_000000.png"),
            None,
            "faceswap counts from 1"
        );
        let files = [
            std::path::PathBuf::from("/p/a.jpg"),
            std::path::PathBuf::from("/p/b.jpg"),
        ];
        let folder = FrameNumbering::of(&files);
        assert_eq!(folder.index("b.jpg"), Some(1));
        assert_eq!(folder.index("c.jpg"), None);
        assert!(parse(b"garbage").unwrap_err().contains("pickle"));
    }
}
