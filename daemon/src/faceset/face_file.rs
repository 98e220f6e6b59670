//! The aligned face file: a PNG whose text chunk carries the face's metadata (source, frame,
//! landmarks, matrices, size, centering).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::geometry::{Affine, Centering};
use crate::media::RgbFrame;

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

/// Encodes an aligned face crop as a PNG carrying `meta`.
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
