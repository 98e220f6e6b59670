//! Face masks: the landmark masks faceswap users know (hull, components, extended), stored the
//! way faceswap stores masks — a fixed-size 8-bit plane plus the frame→mask matrix it was made
//! with, so it can be re-projected into any crop — the per-frame-range mixing rules Faceswap++
//! adds, and the post-processing (erode/dilate, blur, threshold).

pub mod plane;
pub mod rules;
pub mod xseg;

use std::io::{Read, Write};

use self::plane::{Plane, erode_dilate, gaussian_blur};
use crate::geometry::{Affine, Centering, crop_matrix, legacy_matrix};
use crate::warp::{convex_hull, fill_convex};

/// Side of a stored mask (faceswap's `storage_size`).
pub const STORED_SIZE: u32 = 128;

pub use faceswap_options::LandmarkMask;

/// faceswap's 68-point mask parts (lib/align/constants.py `LANDMARK_MASK_PARTS`): each part is
/// the hull of these index ranges (end exclusive).
const PARTS: [&[(usize, usize)]; 8] = [
    &[(0, 9), (17, 18)],                     // right jaw
    &[(8, 17), (26, 27)],                    // left jaw
    &[(17, 20), (8, 9)],                     // right cheek
    &[(24, 27), (8, 9)],                     // left cheek
    &[(19, 25), (8, 9)],                     // nose ridge
    &[(17, 22), (27, 28), (31, 36), (8, 9)], // right eye
    &[(22, 27), (27, 28), (31, 36), (8, 9)], // left eye
    &[(27, 31), (31, 36)],                   // nose
];

/// faceswap's extended face (lib/align/aligned_mask.py `_extend_face_landmarks`): each brow
/// point moves away from the eye line by half its distance to it.
fn extended_landmarks(lm: &[[f64; 2]; 68]) -> [[f64; 2]; 68] {
    let mid = |a: [f64; 2], b: [f64; 2]| [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    let ml = mid(lm[36], lm[0]);
    let mr = mid(lm[16], lm[45]);
    let ql = mid(lm[36], ml);
    let qr = mid(lm[45], mr);
    let bottom_left = [ql, lm[36], lm[37], lm[38], lm[39]];
    let bottom_right = [lm[42], lm[43], lm[44], lm[45], qr];
    let mut out = *lm;
    for k in 0..5 {
        for (top, bottom) in [(17 + k, bottom_left[k]), (22 + k, bottom_right[k])] {
            let t = lm[top];
            out[top] = [
                t[0] + (t[0] - bottom[0]) / 2.0,
                t[1] + (t[1] - bottom[1]) / 2.0,
            ];
        }
    }
    out
}

/// Renders a landmark mask of `kind` for landmarks given in the mask's own pixels.
pub fn landmark_mask(kind: LandmarkMask, lm: &[[f64; 2]; 68], size: usize) -> Plane {
    // Pixel centres sit at +0.5; the filler tests integer coordinates.
    let fill = |points: Vec<[f64; 2]>| {
        let hull: Vec<[f64; 2]> = convex_hull(&points)
            .into_iter()
            .map(|p| [p[0] - 0.5, p[1] - 0.5])
            .collect();
        fill_convex(&hull, size)
    };
    let data = match kind {
        LandmarkMask::Hull => fill(lm.to_vec()),
        LandmarkMask::Components | LandmarkMask::Extended => {
            let pts = if kind == LandmarkMask::Extended {
                extended_landmarks(lm)
            } else {
                *lm
            };
            let mut acc = vec![0f32; size * size];
            for part in PARTS {
                let points: Vec<[f64; 2]> = part
                    .iter()
                    .flat_map(|&(a, b)| pts[a..b].iter().copied())
                    .collect();
                for (o, v) in acc.iter_mut().zip(fill(points)) {
                    *o = o.max(v);
                }
            }
            acc
        }
    };
    Plane {
        width: size,
        height: size,
        data,
    }
}

pub use crate::faceset::store::StoredMask;

// The store keeps the data; making and reading the planes is a mask operation.
impl StoredMask {
    /// Quantises and compresses `mask` (values in [0, 1]), made under `matrix`.
    pub fn new(mask: &Plane, matrix: Affine) -> StoredMask {
        let bytes: Vec<u8> = mask
            .data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(&bytes);
        StoredMask {
            size: mask.width as u32,
            matrix,
            data: enc.finish().unwrap_or_default(),
        }
    }

    /// The stored plane (values in [0, 1]); an error names a damaged mask.
    pub fn plane(&self) -> Result<Plane, String> {
        let n = self.size as usize * self.size as usize;
        let mut bytes = Vec::with_capacity(n);
        flate2::read::DeflateDecoder::new(&self.data[..])
            .read_to_end(&mut bytes)
            .map_err(|e| format!("stored mask is damaged: {e}"))?;
        if bytes.len() != n {
            return Err(format!("stored mask holds {} bytes, not {n}", bytes.len()));
        }
        Ok(Plane {
            width: self.size as usize,
            height: self.size as usize,
            data: bytes.iter().map(|b| *b as f32 / 255.0).collect(),
        })
    }

    /// The mask re-projected into a crop: `frame_to_crop` maps frame pixels to the crop's,
    /// `size` is the crop's side. Outside the stored area is 0.
    pub fn project(&self, frame_to_crop: &Affine, size: usize) -> Result<Plane, String> {
        let stored = self.plane()?;
        let crop_to_frame = frame_to_crop
            .inverse()
            .ok_or_else(|| "the crop matrix is singular".to_string())?;
        let crop_to_mask = self.matrix.then_after(&crop_to_frame);
        let mut data = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                let p = crop_to_mask.apply([x as f64 + 0.5, y as f64 + 0.5]);
                data.push(stored.sample(p[0] as f32, p[1] as f32));
            }
        }
        Ok(Plane {
            width: size,
            height: size,
            data,
        })
    }
}

/// A landmark mask of a face, made at [`STORED_SIZE`] in the legacy (faceswap) crop and stored.
pub fn stored_landmark_mask(kind: LandmarkMask, frame_landmarks: &[[f64; 2]; 68]) -> StoredMask {
    // faceswap stores landmark masks in the "face" crop; the legacy matrix padded the same way
    // keeps the whole head in view (extended reaches the forehead).
    let matrix = crop_matrix(
        &legacy_matrix(frame_landmarks),
        STORED_SIZE,
        Centering::Head,
    );
    let lm = frame_landmarks.map(|p| matrix.apply(p));
    StoredMask::new(&landmark_mask(kind, &lm, STORED_SIZE as usize), matrix)
}

/// Post-processing applied when a mask is used.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PostProcess {
    /// Grow (> 0) or shrink (< 0), percent of the mask's side (faceswap's dilation).
    pub dilation_percent: f32,
    /// Blur kernel in pixels (0 = none).
    pub blur: u32,
    /// Gaussian or a normalised box filter.
    pub box_blur: bool,
    /// Blur passes.
    pub passes: u32,
    /// Values within this percent of 0 or 1 snap to it (faceswap's threshold).
    pub threshold_percent: f32,
}

impl PostProcess {
    /// Applies dilation/erosion, then threshold, then blur (faceswap's order).
    pub fn apply(&self, mask: &Plane) -> Plane {
        let mut m = mask.clone();
        if self.dilation_percent != 0.0 {
            let k = (m.width as f32 * self.dilation_percent.abs() / 100.0).round() as i32;
            // Positive grows: a dilation is a negative erosion.
            m = erode_dilate(&m, if self.dilation_percent > 0.0 { -k } else { k });
        }
        if self.threshold_percent > 0.0 {
            let t = self.threshold_percent / 100.0;
            for v in m.data.iter_mut() {
                if *v < t {
                    *v = 0.0;
                } else if *v > 1.0 - t {
                    *v = 1.0;
                }
            }
        }
        if self.blur > 0 {
            let k = (self.blur | 1) as usize;
            for _ in 0..self.passes.max(1) {
                m = if self.box_blur {
                    box_blur(&m, k)
                } else {
                    gaussian_blur(&m, k)
                };
            }
        }
        m
    }
}

/// A normalised box filter of side `k` (edges held), separable.
fn box_blur(p: &Plane, k: usize) -> Plane {
    let half = (k / 2) as isize;
    let (w, h) = (p.width as isize, p.height as isize);
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for d in -half..=half {
                    let (sx, sy) = if horizontal {
                        ((x + d).clamp(0, w - 1), y)
                    } else {
                        (x, (y + d).clamp(0, h - 1))
                    };
                    acc += src[(sy * w + sx) as usize];
                }
                out[(y * w + x) as usize] = acc / k as f32;
            }
        }
        out
    };
    let tmp = pass(&p.data, true);
    Plane {
        width: p.width,
        height: p.height,
        data: pass(&tmp, false),
    }
}

/// The BiSeNet-FP model and parts a request asks for, the config filling what it leaves open;
/// `None` when neither names a model.
pub fn bisenet_choice(
    req: &faceswap_protocol::BisenetMask,
    cfg: &crate::config::MasksConfig,
) -> Option<(std::path::PathBuf, faceswap_models::bisenet::BiSeNetParts)> {
    let model = req
        .model
        .clone()
        .or_else(|| (!cfg.bisenet_model.is_empty()).then(|| cfg.bisenet_model.clone()))?;
    let parts = faceswap_models::bisenet::BiSeNetParts {
        glasses: req.glasses || cfg.bisenet_glasses,
        ears: req.ears || cfg.bisenet_ears,
        hair: req.hair || cfg.bisenet_hair,
    };
    Some((model.into(), parts))
}

/// The `mask generate` job: landmark masks, then a BiSeNet-FP mask when asked (the model from
/// the request or the config); returns the line the job reports.
pub fn generate_masks_job(
    faceset: &std::path::Path,
    kinds: &[LandmarkMask],
    bisenet: Option<&faceswap_protocol::BisenetMask>,
    ctx: &crate::jobs::JobContext,
) -> Result<String, crate::jobs::JobError> {
    use crate::jobs::JobError;
    let mut line = String::new();
    if !kinds.is_empty() {
        let n = generate_landmark_masks(faceset, kinds).map_err(JobError::Failed)?;
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        line = format!("added {} to {n} faces", names.join(", "));
    }
    let choice = match bisenet {
        Some(b) => {
            let cfg = ctx.runtime().config().map_err(JobError::Failed)?;
            bisenet_choice(b, &cfg.masks)
        }
        None => None,
    };
    if let Some((model, parts)) = choice {
        ctx.progress(0, None, "BiSeNet-FP masks");
        // Only ONNX Runtime: the extractor's own models are not needed here.
        let runtime = crate::assets::onnx_runtime_library(ctx.runtime().dirs())
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let n =
            generate_bisenet_masks(faceset, &runtime, &model, parts).map_err(JobError::Failed)?;
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&format!(
            "added a BiSeNet-FP mask ({}) to {n} faces",
            model.display()
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests;

/// Adds landmark masks of `kinds` to every accepted face in a faceset's alignments (written
/// atomically). Returns how many faces got them.
pub fn generate_landmark_masks(
    faceset: &std::path::Path,
    kinds: &[LandmarkMask],
) -> Result<usize, String> {
    let (path, mut store) = crate::faceset::load_store(faceset)?;
    let mut n = 0;
    for entry in store.frames.values_mut() {
        for f in entry.faces.iter_mut() {
            if f.face.rejected.is_some() || f.face.landmarks.len() != 68 {
                continue;
            }
            let lm = f.face.landmarks68();
            for kind in kinds {
                f.masks
                    .insert(kind.name().to_string(), stored_landmark_mask(*kind, &lm));
            }
            n += 1;
        }
    }
    store.save(&path).map_err(|e| e.to_string())?;
    Ok(n)
}

/// A review sheet: up to `max` aligned faces of the faceset with the mask the rules choose for
/// each tinted red over it (faces without one are shown untinted with a grey border), 8 per
/// row at 128 px, written as PNG. Returns how many faces are on it.
pub fn review_grid(
    faceset: &std::path::Path,
    rules: &rules::MaskRules,
    out: &std::path::Path,
    max: usize,
) -> Result<usize, String> {
    const TILE: usize = 128;
    const COLUMNS: usize = 8;
    let (_, store) = crate::faceset::load_store(faceset)?;
    let mut tiles = Vec::new();
    'frames: for (index, entry) in &store.frames {
        for f in &entry.faces {
            if tiles.len() >= max {
                break 'frames;
            }
            let Some(file) = &f.file else {
                continue;
            };
            let path = faceset.join(file);
            let meta = crate::faceset::read_face_meta(&path)?;
            let img = crate::sampling::load_image(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let scale = TILE as f64 / meta.size.max(1) as f64;
            let to_tile = Affine([[scale, 0.0, 0.0], [0.0, scale, 0.0]]).then_after(&meta.crop);
            let chosen = f.mask_by_rules(*index, rules);
            let mask = match chosen {
                Some((_, sm)) => Some(sm.project(&to_tile, TILE)?),
                None => None,
            };
            let mut tile = vec![0u8; TILE * TILE * 3];
            for y in 0..TILE {
                for x in 0..TILE {
                    let sx = (x * img.width as usize / TILE).min(img.width as usize - 1);
                    let sy = (y * img.height as usize / TILE).min(img.height as usize - 1);
                    let s = (sy * img.width as usize + sx) * 3;
                    let mut px = [
                        img.data[s] as f32,
                        img.data[s + 1] as f32,
                        img.data[s + 2] as f32,
                    ];
                    let edge = x == 0 || y == 0 || x == TILE - 1 || y == TILE - 1;
                    match &mask {
                        Some(m) => {
                            let a = 0.45 * m.data[y * TILE + x];
                            px = [
                                px[0] * (1.0 - a) + 255.0 * a,
                                px[1] * (1.0 - a),
                                px[2] * (1.0 - a),
                            ];
                        }
                        None if edge => px = [128.0; 3],
                        None => {}
                    }
                    let o = (y * TILE + x) * 3;
                    for c in 0..3 {
                        tile[o + c] = px[c].round().clamp(0.0, 255.0) as u8;
                    }
                }
            }
            tiles.push(tile);
        }
    }
    if tiles.is_empty() {
        return Err(format!(
            "{} has no aligned faces to show",
            faceset.display()
        ));
    }
    let cols = COLUMNS.min(tiles.len());
    let rows = tiles.len().div_ceil(cols);
    let (w, h) = (cols * TILE, rows * TILE);
    let mut data = vec![0u8; w * h * 3];
    for (k, tile) in tiles.iter().enumerate() {
        let (tx, ty) = ((k % cols) * TILE, (k / cols) * TILE);
        for y in 0..TILE {
            let o = ((ty + y) * w + tx) * 3;
            data[o..o + TILE * 3].copy_from_slice(&tile[y * TILE * 3..(y + 1) * TILE * 3]);
        }
    }
    let png = crate::media::encode_png(&crate::media::RgbFrame {
        width: w as u32,
        height: h as u32,
        data,
    })
    .map_err(|e| e.to_string())?;
    crate::atomic::write_atomic(out, &png)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(tiles.len())
}

/// Runs a BiSeNet-FP ONNX model on every accepted face's aligned crop in a faceset and stores
/// the result as `bisenet-fp_face` (or `bisenet-fp_head` with hair). The mask covers what the
/// aligned crop covers (its matrix is the crop's), so extract with `face` or `head` centering
/// for faceswap's framing. Returns how many faces got one.
pub fn generate_bisenet_masks(
    faceset: &std::path::Path,
    runtime: &std::path::Path,
    model: &std::path::Path,
    parts: faceswap_models::bisenet::BiSeNetParts,
) -> Result<usize, String> {
    use faceswap_models::bisenet::{BISENET_SIZE, BiSeNetFp};
    let mut net = BiSeNetFp::load(runtime, model).map_err(|e| e.to_string())?;
    let name = if parts.hair {
        "bisenet-fp_head"
    } else {
        "bisenet-fp_face"
    };
    let (path, mut store) = crate::faceset::load_store(faceset)?;
    let mut n = 0;
    for entry in store.frames.values_mut() {
        for f in entry.faces.iter_mut() {
            let Some(file) = &f.file else {
                continue;
            };
            if f.face.rejected.is_some() {
                continue;
            }
            let png = faceset.join(file);
            let meta = crate::faceset::read_face_meta(&png)?;
            let img = image::open(&png)
                .map_err(|e| format!("{}: {e}", png.display()))?
                .to_rgb8();
            let input = image::imageops::resize(
                &img,
                BISENET_SIZE as u32,
                BISENET_SIZE as u32,
                image::imageops::FilterType::Triangle,
            );
            let mask = net.mask(input.as_raw(), parts).map_err(|e| e.to_string())?;
            let full = Plane {
                width: BISENET_SIZE,
                height: BISENET_SIZE,
                data: mask,
            };
            let stored = full.resized(STORED_SIZE as usize);
            // Frame → stored mask: the crop's matrix scaled from its size to the stored size.
            let k = STORED_SIZE as f64 / meta.size.max(1) as f64;
            let matrix = Affine([[k, 0.0, 0.0], [0.0, k, 0.0]]).then_after(&meta.crop);
            f.masks
                .insert(name.to_string(), StoredMask::new(&stored, matrix));
            n += 1;
        }
    }
    store.save(&path).map_err(|e| e.to_string())?;
    Ok(n)
}
