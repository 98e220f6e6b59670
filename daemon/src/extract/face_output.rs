//! How extraction writes an aligned face file (the crop, warped from the frame's pyramid, with
//! its metadata).

use std::path::{Path, PathBuf};

use super::ExtractError;
use crate::atomic::write_atomic;
use crate::faceset::face::Face;
use crate::faceset::face_file::{FaceMeta, encode_face_png};
use crate::geometry::{self, Affine, Centering, crop_matrix};
use crate::sampling::Pyramid;

/// Where and how aligned face files are written.
#[derive(Debug, Clone)]
pub struct FaceOutput {
    /// The source, as recorded in each file's metadata.
    pub source: String,
    /// The faceset folder (files go to `faces/` or `rejected/` inside).
    pub folder: PathBuf,
    /// File name stem (the source's).
    pub stem: String,
    /// Crop side in pixels.
    pub size: u32,
    /// Crop centering.
    pub centering: Centering,
}

impl FaceOutput {
    /// Faces of `source` into the faceset `folder`, named after the source's file stem.
    pub fn new(source: &Path, folder: &Path, size: u32, centering: Centering) -> FaceOutput {
        FaceOutput {
            source: source.display().to_string(),
            folder: folder.to_path_buf(),
            stem: source
                .file_stem()
                .map(|s| s.to_string_lossy().replace(' ', "_"))
                .unwrap_or_else(|| "frame".into()),
            size,
            centering,
        }
    }
}

/// Writes face `k` of frame `index` as an aligned PNG carrying its metadata; returns its path
/// relative to the faceset folder.
pub fn write_aligned_face(
    out: &FaceOutput,
    pyr: &Pyramid,
    index: u64,
    name: &str,
    k: u32,
    face: &Face,
) -> Result<String, ExtractError> {
    let centred = geometry::centered_matrix(&face.legacy, &face.landmarks68(), out.centering);
    let crop = crop_matrix(&centred, out.size, out.centering);
    let inverse = crop.inverse().unwrap_or(Affine::IDENTITY);
    let img = pyr.warp_rgb(&inverse, out.size as usize);
    let meta = FaceMeta {
        source: out.source.clone(),
        frame: index,
        frame_name: name.to_string(),
        face_index: k,
        landmarks: face.landmarks.clone(),
        legacy: face.legacy,
        crop,
        size: out.size,
        centering: out.centering,
        rejected: face.rejected.clone(),
    };
    let folder = if face.rejected.is_some() {
        "rejected"
    } else {
        "faces"
    };
    let rel = format!("{folder}/{}_{index:06}_{k}.png", out.stem);
    let path = out.folder.join(&rel);
    let bytes = encode_face_png(&img, &meta).map_err(|e| ExtractError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ExtractError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_atomic(&path, &bytes).map_err(|source| ExtractError::Write { path, source })?;
    Ok(rel)
}
