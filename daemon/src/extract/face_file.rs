//! The aligned face file: a PNG whose text chunk carries the face's metadata (source, frame,
//! landmarks, matrices, size, centering), and how extraction writes one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::geometry::{Affine, Centering, crop_matrix};
use super::image::Pyramid;
use super::pipeline::Face;
use crate::atomic::write_atomic;
use crate::media::RgbFrame;

use super::*;

/// PNG text-chunk keyword holding a face's metadata.
pub const PNG_META_KEY: &str = "faceswappp";

/// Metadata stored inside every aligned face PNG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceMeta {
    /// Source video or folder.
    pub source: String,
    /// Frame index in the source.
    pub frame: u64,
    /// Frame name.
    pub frame_name: String,
    /// Face index within the frame.
    pub face_index: u32,
    /// 68 landmarks in frame pixels.
    pub landmarks: Vec<[f64; 2]>,
    /// Frame → mean-face matrix.
    pub legacy: Affine,
    /// Frame → this crop's pixels.
    pub crop: Affine,
    /// Crop size.
    pub size: u32,
    /// Crop centering.
    pub centering: Centering,
    /// Filter verdict (None = accepted).
    pub rejected: Option<String>,
}

impl FaceMeta {
    /// Frame pixels → pixels of this crop resampled to `size`².
    pub fn crop_at(&self, size: usize) -> Affine {
        let k = size as f64 / self.size.max(1) as f64;
        Affine([[k, 0.0, 0.0], [0.0, k, 0.0]]).then_after(&self.crop)
    }
}

pub fn encode_face_png(crop: &RgbFrame, meta: &FaceMeta) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, crop.width, crop.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let text = toml::to_string(meta).map_err(|e| e.to_string())?;
    enc.add_itxt_chunk(PNG_META_KEY.to_string(), text)
        .map_err(|e| e.to_string())?;
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&crop.data))
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Reads the metadata of an aligned face PNG written by extraction.
pub fn read_face_meta(path: &Path) -> Result<FaceMeta, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let reader = decoder
        .read_info()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let chunk = reader
        .info()
        .utf8_text
        .iter()
        .find(|c| c.keyword == PNG_META_KEY)
        .ok_or_else(|| format!("{} has no Faceswap++ metadata", path.display()))?;
    let text = chunk.get_text().map_err(|e| e.to_string())?;
    toml::from_str(&text).map_err(|e| format!("{}: bad metadata: {e}", path.display()))
}

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
