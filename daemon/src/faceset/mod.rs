//! The faceset on disk, which every stage reads and the tools edit: the alignments store (faces
//! per frame, stored masks, XSeg labels, tracks), the stored face record, and the aligned face
//! file with its metadata. No stage lives here: extraction writes a faceset, the others read it.

pub mod face;
pub mod face_file;
pub mod store;

use std::path::{Path, PathBuf};

use store::Alignments;

pub use face_file::{FaceMeta, PNG_META_KEY, encode_face_png, read_face_meta};

/// File name of the alignments store inside a faceset folder.
pub const ALIGNMENTS_FILE: &str = "alignments.fsppa";

/// The alignments store of a faceset folder and its path.
pub fn load_store(faceset: &Path) -> Result<(PathBuf, Alignments), String> {
    let path = faceset.join(ALIGNMENTS_FILE);
    let store = Alignments::load(&path).map_err(|e| e.to_string())?;
    Ok((path, store))
}

/// The aligned face PNGs of a faceset (its `faces/` folder, or the folder itself), sorted.
pub fn face_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let folder = if dir.join("faces").is_dir() {
        dir.join("faces")
    } else {
        dir.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map_err(|e| format!("cannot read faceset folder {}: {e}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    Ok(files)
}
