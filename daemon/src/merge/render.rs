//! The swap effect's render path in the daemon: a frame arrives in a shared-memory slot (RGBA,
//! 8/16-bit or half/single float, rows top-down, any stride), faces are found with the
//! extractor, swapped through [`merge_frame`] — the same merge `convert` runs — and only the
//! pixels the merge changed are written back, in the slot's own format. Everything else keeps
//! its exact bytes, alpha included.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use faceswap_models::ComputeDevice;
use faceswap_protocol::{PixelFormat, SlotHeader, SwapSettings, SwapTarget, SwapView};

use super::predictor::ModelPredictor;
use super::settings::merge_settings;
use super::{Plane, TargetFace, merge_frame_with_mask};
use crate::checkpoint;
use crate::extract::pipeline::{Extractor, StageTimings};
use crate::faceset::face::ExtractSettings;
use crate::media::RgbFrame;
use crate::runtime::Runtime;
use crate::sampling::Pyramid;

/// A model loaded for rendering, with the checkpoint it came from.
struct LoadedModel {
    predictor: ModelPredictor,
    checkpoint_mtime: Option<SystemTime>,
}

/// What one swap render did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapReport {
    /// Faces found in the frame.
    pub faces_found: usize,
    /// Faces swapped.
    pub faces_swapped: usize,
    /// The model's checkpoint step.
    pub model_step: u64,
}

/// Loaded extractor and models, kept between renders (loading takes far longer than a frame).
pub struct FrameSwapper {
    /// The daemon's render device (`compute.device`, or the cpu when that is unusable).
    device: ComputeDevice,
    /// Devices a render asked for by name (the plug-in's Device parameter), resolved once.
    requested: HashMap<String, ComputeDevice>,
    extractor: Option<Extractor>,
    models: HashMap<(PathBuf, Option<String>, ComputeDevice), LoadedModel>,
    /// The daemon's config and device rule, shared with its jobs.
    runtime: Arc<Runtime>,
}

fn checkpoint_mtime(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join(checkpoint::CURRENT))
        .and_then(|m| m.modified())
        .ok()
}

impl FrameSwapper {
    /// Nothing loaded yet; models run on `device` (see [`Runtime::render_device`]).
    pub fn new(device: ComputeDevice, runtime: Arc<Runtime>) -> Self {
        FrameSwapper {
            device,
            requested: HashMap::new(),
            extractor: None,
            models: HashMap::new(),
            runtime,
        }
    }

    /// The extractor, loaded on first use (configured models, as extract jobs use).
    pub fn extractor(&mut self) -> Result<&mut Extractor, String> {
        if self.extractor.is_none() {
            let cfg = self.runtime.config()?;
            let files = crate::extract::configured_models(self.runtime.dirs(), &cfg.extract)
                .map_err(|e| e.to_string())?;
            self.extractor = Some(
                Extractor::load(&files, ExtractSettings::default()).map_err(|e| e.to_string())?,
            );
        }
        self.extractor
            .as_mut()
            .ok_or_else(|| "the extractor could not be loaded".to_string())
    }

    /// The device a render runs on: the one it names (probed once, by the rule jobs use; an
    /// unusable one is the render's error), else the daemon's.
    fn device_for(&mut self, requested: Option<&str>) -> Result<ComputeDevice, String> {
        let Some(spelling) = requested else {
            return Ok(self.device);
        };
        if let Some(device) = self.requested.get(spelling) {
            return Ok(*device);
        }
        let device = self.runtime.device(Some(spelling))?;
        self.requested.insert(spelling.to_string(), device);
        Ok(device)
    }

    /// The model of `dir` (with the XSeg model of `xseg`, if any) on `device`, reloaded when a
    /// newer checkpoint has landed since it was loaded.
    fn model(
        &mut self,
        dir: &Path,
        xseg: Option<&str>,
        device: ComputeDevice,
    ) -> Result<&mut LoadedModel, String> {
        let mtime = checkpoint_mtime(dir);
        let key = (dir.to_path_buf(), xseg.map(str::to_string), device);
        let stale = self
            .models
            .get(&key)
            .is_none_or(|m| m.checkpoint_mtime != mtime);
        if stale {
            let mut predictor = ModelPredictor::open(dir, device).map_err(|e| e.to_string())?;
            if let Some(x) = xseg {
                predictor = predictor
                    .with_xseg(Path::new(x))
                    .map_err(|e| e.to_string())?;
            }
            self.models.insert(
                key.clone(),
                LoadedModel {
                    predictor,
                    checkpoint_mtime: mtime,
                },
            );
        }
        self.models
            .get_mut(&key)
            .ok_or_else(|| format!("model {} could not be loaded", dir.display()))
    }

    /// Swaps the faces of the frame in `pixels` (laid out as `h` says) in place.
    pub fn swap(
        &mut self,
        pixels: &mut [u8],
        h: &SlotHeader,
        settings: &SwapSettings,
    ) -> Result<SwapReport, String> {
        let merge = merge_settings(&settings.merge).map_err(|e| e.to_string())?;
        let frame = to_rgb8(pixels, h, settings.bottom_up);
        let faces = self
            .extractor()?
            .process(&Pyramid::new(frame.clone()), &mut StageTimings::default())
            .map_err(|e| e.to_string())?;
        let mut accepted: Vec<_> = faces
            .iter()
            .filter(|f| f.rejected.is_none() && f.landmarks.len() == 68)
            .collect();
        let found = accepted.len();
        let area = |f: &&crate::faceset::face::Face| {
            (f.bbox[2] - f.bbox[0]).abs() * (f.bbox[3] - f.bbox[1]).abs()
        };
        let chosen: Vec<_> = match settings.target {
            SwapTarget::All => accepted,
            SwapTarget::Largest => {
                accepted.sort_by(|a, b| area(b).total_cmp(&area(a)));
                accepted.into_iter().take(1).collect()
            }
            SwapTarget::Index(i) => accepted.into_iter().skip(i as usize).take(1).collect(),
        };
        let targets: Vec<TargetFace> = chosen
            .iter()
            .map(|f| TargetFace {
                landmarks: f.landmarks68(),
                motion: Default::default(),
                mask: None,
            })
            .collect();
        if settings.show == SwapView::Landmarks {
            let mut out = frame.clone();
            for t in &targets {
                draw_landmarks(&mut out, &t.landmarks);
            }
            write_changed(pixels, h, &frame, &out, settings.bottom_up);
            return Ok(SwapReport {
                faces_found: found,
                faces_swapped: 0,
                model_step: 0,
            });
        }
        let device = self.device_for(settings.merge.device.as_deref())?;
        let model = self.model(
            Path::new(&settings.model_dir),
            settings.merge.xseg_model.as_deref(),
            device,
        )?;
        let step = model.predictor.step;
        if targets.is_empty() && settings.show == SwapView::Result {
            return Ok(SwapReport {
                faces_found: found,
                faces_swapped: 0,
                model_step: step,
            });
        }
        let mut mask = Plane::filled(frame.width as usize, frame.height as usize, 0.0);
        let want_mask = settings.show == SwapView::Mask;
        let merged = merge_frame_with_mask(
            &frame,
            &targets,
            &mut model.predictor,
            &merge,
            want_mask.then_some(&mut mask),
        )?;
        let out = if want_mask {
            RgbFrame {
                width: frame.width,
                height: frame.height,
                data: mask
                    .data
                    .iter()
                    .flat_map(|v| [(v.clamp(0.0, 1.0) * 255.0).round() as u8; 3])
                    .collect(),
            }
        } else {
            merged
        };
        if (out.width, out.height) != (frame.width, frame.height) {
            return Err("raw-predict changes the frame size; the effect cannot show it".into());
        }
        write_changed(pixels, h, &frame, &out, settings.bottom_up);
        Ok(SwapReport {
            faces_found: found,
            faces_swapped: targets.len(),
            model_step: step,
        })
    }
}

/// Marks each landmark with a 3×3 dot: jaw yellow, brows and nose green, eyes cyan, mouth red.
fn draw_landmarks(frame: &mut RgbFrame, lm: &[[f64; 2]; 68]) {
    let (w, h) = (frame.width as i64, frame.height as i64);
    for (i, p) in lm.iter().enumerate() {
        let colour = match i {
            0..=16 => [255, 220, 0],
            17..=35 => [0, 220, 80],
            36..=47 => [0, 220, 255],
            _ => [255, 60, 60],
        };
        let (cx, cy) = (p[0].floor() as i64, p[1].floor() as i64);
        for y in cy - 1..=cy + 1 {
            for x in cx - 1..=cx + 1 {
                if x >= 0 && y >= 0 && x < w && y < h {
                    let o = ((y * w + x) * 3) as usize;
                    frame.data[o..o + 3].copy_from_slice(&colour);
                }
            }
        }
    }
}

/// One channel as a value in [0, 1].
fn read_channel(p: &[u8], format: PixelFormat, c: usize) -> f32 {
    match format {
        PixelFormat::Rgba8 => p[c] as f32 / 255.0,
        PixelFormat::Rgba16 => u16::from_le_bytes([p[2 * c], p[2 * c + 1]]) as f32 / 65535.0,
        PixelFormat::RgbaF16 => {
            half::f16::from_bits(u16::from_le_bytes([p[2 * c], p[2 * c + 1]])).to_f32()
        }
        PixelFormat::RgbaF32 => {
            f32::from_le_bytes([p[4 * c], p[4 * c + 1], p[4 * c + 2], p[4 * c + 3]])
        }
    }
}

fn write_channel(p: &mut [u8], format: PixelFormat, c: usize, v: f32) {
    match format {
        PixelFormat::Rgba8 => p[c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8,
        PixelFormat::Rgba16 => {
            let b = ((v.clamp(0.0, 1.0) * 65535.0).round() as u16).to_le_bytes();
            p[2 * c..2 * c + 2].copy_from_slice(&b);
        }
        PixelFormat::RgbaF16 => {
            let b = half::f16::from_f32(v).to_bits().to_le_bytes();
            p[2 * c..2 * c + 2].copy_from_slice(&b);
        }
        PixelFormat::RgbaF32 => p[4 * c..4 * c + 4].copy_from_slice(&v.to_le_bytes()),
    }
}

/// Memory row of image row `y` (top = 0).
fn memory_row(y: usize, height: usize, bottom_up: bool) -> usize {
    if bottom_up { height - 1 - y } else { y }
}

/// The slot's frame as 8-bit RGB, top row first (what detection and the merge work on).
pub fn to_rgb8(pixels: &[u8], h: &SlotHeader, bottom_up: bool) -> RgbFrame {
    let (w, hh) = (h.width as usize, h.height as usize);
    let bpp = h.format.bytes_per_pixel();
    let mut data = Vec::with_capacity(w * hh * 3);
    for y in 0..hh {
        let row = &pixels[memory_row(y, hh, bottom_up) * h.stride as usize..];
        for x in 0..w {
            let p = &row[x * bpp..(x + 1) * bpp];
            for c in 0..3 {
                data.push((read_channel(p, h.format, c).clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    RgbFrame {
        width: h.width,
        height: h.height,
        data,
    }
}

/// Writes back the pixels where `after` differs from `before`, in the slot's format; alpha and
/// every unchanged pixel keep their bytes.
fn write_changed(
    pixels: &mut [u8],
    h: &SlotHeader,
    before: &RgbFrame,
    after: &RgbFrame,
    bottom_up: bool,
) {
    let w = h.width as usize;
    let bpp = h.format.bytes_per_pixel();
    for y in 0..h.height as usize {
        for x in 0..w {
            let i = (y * w + x) * 3;
            if before.data[i..i + 3] == after.data[i..i + 3] {
                continue;
            }
            let o = memory_row(y, h.height as usize, bottom_up) * h.stride as usize + x * bpp;
            let p = &mut pixels[o..o + bpp];
            for c in 0..3 {
                write_channel(p, h.format, c, after.data[i + c] as f32 / 255.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_in_every_format() {
        for format in [
            PixelFormat::Rgba8,
            PixelFormat::Rgba16,
            PixelFormat::RgbaF16,
            PixelFormat::RgbaF32,
        ] {
            let mut p = vec![0u8; format.bytes_per_pixel()];
            for (c, v) in [0.0f32, 0.2, 1.0].iter().enumerate() {
                write_channel(&mut p, format, c, *v);
                let back = read_channel(&p, format, c);
                assert!((back - v).abs() < 2e-3, "{format:?} {v} → {back}");
            }
        }
    }

    #[test]
    fn only_changed_pixels_are_written_back() {
        let h = SlotHeader {
            width: 3,
            height: 2,
            stride: 3 * 16 + 8,
            format: PixelFormat::RgbaF32,
            content_hash: 0,
        };
        let mut px: Vec<u8> = (0..h.stride as usize * 2)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        // Valid floats in [0, 1] for the colour channels.
        for y in 0..2 {
            for x in 0..3 {
                let o = y * h.stride as usize + x * 16;
                for c in 0..3 {
                    write_channel(
                        &mut px[o..o + 16],
                        h.format,
                        c,
                        0.1 * (x + c) as f32 + 0.013,
                    );
                }
            }
        }
        let original = px.clone();
        let before = to_rgb8(&px, &h, false);
        let mut after = before.clone();
        after.data[3..6].copy_from_slice(&[255, 0, 0]); // pixel (1, 0)
        write_changed(&mut px, &h, &before, &after, false);
        let o = 16;
        assert_eq!(read_channel(&px[o..o + 16], h.format, 0), 1.0);
        assert_eq!(px[o + 12..o + 16], original[o + 12..o + 16], "alpha kept");
        for (i, (a, b)) in px.iter().zip(&original).enumerate() {
            if !(16..28).contains(&i) {
                assert_eq!(a, b, "byte {i} changed");
            }
        }
    }
}
