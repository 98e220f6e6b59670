//! Merge: put the swapped face back into the frame (DFL `merger/MergeMasked.py`, faceswap
//! `lib/convert.py`). Per face: the aligned crop goes through the model, the mask is chosen and
//! processed in the face's space, colour is transferred, and the face is warped back through
//! the inverse matrix and blended in. Pixels the mask does not reach keep their exact bytes.
//!
//! Deviations from DFL, on purpose: bilinear (not bicubic) resampling, colour-transfer
//! statistics over the mask only (DFL parity is a switch), motion blur and sharpening applied in
//! frame pixels (no extra resampling through the crop), and masks processed at 4× the model's
//! resolution as DFL's `mask_subres_size`.

pub mod color;
pub mod convert;
pub mod error;
pub mod output;
pub mod predictor;
pub mod render;
pub mod settings;

use crate::geometry::{Affine, Centering, centered_matrix, crop_matrix, legacy_matrix};
use crate::masks::plane as mask;
pub use crate::masks::plane::{MaskMode, Plane};
use crate::media::RgbFrame;
use crate::sampling::Pyramid;
use crate::warp::{convex_hull, fill_convex};
pub use color::{BalanceSpace, ColorTransfer, ManualBalance, MaskStatistics, Rgb};

pub use faceswap_options::{MergeMode, SharpenKind};

/// Every merge option.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSettings {
    /// Blending.
    pub mode: MergeMode,
    /// Which mask blends.
    pub mask_mode: MaskMode,
    /// Colour transfer.
    pub color: ColorTransfer,
    /// How masks limit colour statistics.
    pub mask_statistics: MaskStatistics,
    /// Erode (> 0) or dilate (< 0) the mask, pixels at 4× the model resolution (DFL −400…400).
    pub erode: i32,
    /// Blur the mask, pixels at 4× the model resolution (DFL 0…400).
    pub blur: u32,
    /// Output face scale, percent (DFL −50…50).
    pub face_scale: i32,
    /// Sharpen (> 0) or soften (< 0), percent (−100…100).
    pub sharpen: i32,
    /// Sharpening kernel.
    pub sharpen_kind: SharpenKind,
    /// Motion blur power, percent of the face's motion between neighbouring frames (0…100).
    pub motion_blur: u32,
    /// hist-match threshold (DFL 0…255, default 238).
    pub hist_match_threshold: u8,
    /// hist-match only inside the mask.
    pub masked_hist_match: bool,
    /// Blend strength of the merged face, 0…1 (the editor's opacity).
    pub opacity: f32,
    /// Seed for the random directions of idt / sot.
    pub seed: u64,
}

impl Default for MergeSettings {
    fn default() -> Self {
        MergeSettings {
            mode: MergeMode::Overlay,
            mask_mode: MaskMode::LearnedPrdTimesDst,
            color: ColorTransfer::Rct,
            mask_statistics: MaskStatistics::InsideMask,
            erode: 0,
            blur: 0,
            face_scale: 0,
            sharpen: 0,
            sharpen_kind: SharpenKind::Box,
            motion_blur: 0,
            hist_match_threshold: 238,
            masked_hist_match: true,
            opacity: 1.0,
            seed: 0,
        }
    }
}

/// Merge cannot run with these settings or inputs.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// An XSeg mask mode without an XSeg model.
    #[error(
        "mask mode {0:?} needs a trained XSeg model: pass --xseg-model DIR (train one with `faceswapd xseg train`), or use full, dst, learned-prd, learned-dst, prd*dst or prd+dst"
    )]
    XsegUnavailable(MaskMode),
    /// An option out of range.
    #[error("{0}")]
    Setting(String),
}

impl MergeSettings {
    /// Checks ranges and what the mask mode needs.
    pub fn validate(&self) -> Result<(), MergeError> {
        let range = |name: &str, v: i64, lo: i64, hi: i64| {
            if v < lo || v > hi {
                Err(MergeError::Setting(format!(
                    "{name} {v} is out of range {lo}…{hi}"
                )))
            } else {
                Ok(())
            }
        };
        range("erode", self.erode as i64, -400, 400)?;
        range("blur", self.blur as i64, 0, 400)?;
        range("face scale", self.face_scale as i64, -50, 50)?;
        range("sharpen", self.sharpen as i64, -100, 100)?;
        range("motion blur", self.motion_blur as i64, 0, 100)?;
        if !(0.0..=1.0).contains(&self.opacity) {
            return Err(MergeError::Setting(format!(
                "opacity {} is out of range 0…1",
                self.opacity
            )));
        }
        Ok(())
    }
}

/// What the model makes of one destination face.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The swapped face, `R × R`, row-major.
    pub face: Vec<Rgb>,
    /// Mask predicted with the swapped face.
    pub face_mask: Plane,
    /// Mask predicted for the destination face.
    pub dst_mask: Plane,
}

/// The face-swap model as merge sees it.
pub trait FacePredictor {
    /// Side of the square faces it takes and gives.
    fn resolution(&self) -> usize;
    /// The crop its training faces used.
    fn centering(&self) -> Centering;
    /// Swaps a batch of destination faces (each `R × R`, row-major RGB in [0, 1]).
    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String>;
    /// XSeg masks of a batch of `R × R` faces, when the predictor has an XSeg model (the XSeg
    /// mask modes need one; DFL runs XSeg on the destination and the predicted face).
    fn segment(&mut self, _faces: &[Vec<Rgb>]) -> Result<Option<Vec<Plane>>, String> {
        Ok(None)
    }
}

/// Face motion between the neighbouring frames (DFL `mainscripts/Merger.py`): the distance the
/// face centre moved from the previous to the next frame, in frame pixels, and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Motion {
    /// Pixels.
    pub power: f64,
    /// Direction, radians (image axes: x right, y down).
    pub angle: f64,
}

/// One face to replace in a frame.
#[derive(Debug, Clone)]
pub struct TargetFace {
    /// 68 landmarks in frame pixels.
    pub landmarks: [[f64; 2]; 68],
    /// Motion for the motion blur.
    pub motion: Motion,
    /// The stored mask the mask rules chose (mask mode `stored`).
    pub mask: Option<crate::masks::StoredMask>,
}

/// The centre of a face in frame pixels (the aligned face's centre mapped back), for motion.
pub fn face_centre(landmarks: &[[f64; 2]; 68]) -> Option<[f64; 2]> {
    legacy_matrix(landmarks)
        .inverse()
        .map(|m| m.apply([0.5, 0.5]))
}

/// Frame → crop pixels for a face at the model's resolution and centering.
pub fn face_matrix(landmarks: &[[f64; 2]; 68], size: usize, centering: Centering) -> Affine {
    let legacy = legacy_matrix(landmarks);
    let m = centered_matrix(&legacy, landmarks, centering);
    crop_matrix(&m, size as u32, centering)
}

/// The destination face as the model sees it: the frame warped into the crop.
pub fn aligned_face(pyramid: &Pyramid, frame_to_crop: &Affine, size: usize) -> Option<Vec<Rgb>> {
    let inv = frame_to_crop.inverse()?;
    let crop = pyramid.warp_rgb(&inv, size);
    Some(
        crop.data
            .chunks_exact(3)
            .map(|p| {
                [
                    p[0] as f32 / 255.0,
                    p[1] as f32 / 255.0,
                    p[2] as f32 / 255.0,
                ]
            })
            .collect(),
    )
}

/// Merges every target face of one frame. `frame` is the source frame; the result has the same
/// size (raw-predict: the predicted face of the last target).
pub fn merge_frame(
    frame: &RgbFrame,
    targets: &[TargetFace],
    predictor: &mut dyn FacePredictor,
    settings: &MergeSettings,
) -> Result<RgbFrame, String> {
    merge_frame_with_mask(frame, targets, predictor, settings, None)
}

/// [`merge_frame`], also writing each frame pixel's blend weight into `mask` (frame-sized,
/// the largest weight where faces overlap) when given — the effect's "show mask" view.
pub fn merge_frame_with_mask(
    frame: &RgbFrame,
    targets: &[TargetFace],
    predictor: &mut dyn FacePredictor,
    settings: &MergeSettings,
    mut mask: Option<&mut Plane>,
) -> Result<RgbFrame, String> {
    settings.validate().map_err(|e| e.to_string())?;
    if targets.is_empty() || settings.mode == MergeMode::Original {
        return Ok(frame.clone());
    }
    let r = predictor.resolution();
    let centering = predictor.centering();
    let pyramid = Pyramid::new(frame.clone());
    let mut mats = Vec::with_capacity(targets.len());
    let mut inputs = Vec::with_capacity(targets.len());
    for t in targets {
        let m = face_matrix(&t.landmarks, r, centering);
        let Some(face) = aligned_face(&pyramid, &m, r) else {
            continue; // a degenerate matrix: leave this face alone
        };
        mats.push((m, t));
        inputs.push(face);
    }
    if inputs.is_empty() {
        return Ok(frame.clone());
    }
    let predictions = predictor.predict(&inputs)?;
    // XSeg modes: XSeg on the destination faces and on the predicted ones.
    let xseg: Vec<Option<(Plane, Plane)>> = if settings.mask_mode.needs_xseg() {
        let unavailable = || MergeError::XsegUnavailable(settings.mask_mode).to_string();
        let dst = predictor.segment(&inputs)?.ok_or_else(unavailable)?;
        let faces: Vec<Vec<Rgb>> = predictions.iter().map(|p| p.face.clone()).collect();
        let prd = predictor.segment(&faces)?.ok_or_else(unavailable)?;
        prd.into_iter().zip(dst).map(Some).collect()
    } else {
        vec![None; predictions.len()]
    };
    let mut out = frame.clone();
    for ((((m, t), dst), pred), xseg) in mats.iter().zip(&inputs).zip(predictions).zip(xseg) {
        if settings.mode == MergeMode::RawPredict {
            out = raw_predict(&pred, r);
            continue;
        }
        merge_face(
            &mut out,
            frame,
            m,
            t,
            dst,
            pred,
            xseg.as_ref(),
            r,
            settings,
            mask.as_deref_mut(),
        );
    }
    Ok(out)
}

fn raw_predict(pred: &Prediction, r: usize) -> RgbFrame {
    RgbFrame {
        width: r as u32,
        height: r as u32,
        data: pred.face.iter().flat_map(|p| p.map(to_byte)).collect(),
    }
}

#[inline]
fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// The working mask at the model's resolution, per the mask mode.
fn working_mask(
    mode: MaskMode,
    landmarks_in_crop: &[[f64; 2]],
    pred: &Prediction,
    xseg: Option<&(Plane, Plane)>,
    r: usize,
) -> Plane {
    // (XSeg-prd, XSeg-dst); the modes that need them are refused earlier when absent.
    let xprd = || xseg.map_or(Plane::filled(r, r, 0.0), |x| x.0.resized(r));
    let xdst = || xseg.map_or(Plane::filled(r, r, 0.0), |x| x.1.resized(r));
    let prd = || pred.face_mask.resized(r);
    let dst = || pred.dst_mask.resized(r);
    let zip = |a: Plane, b: Plane, f: fn(f32, f32) -> f32| Plane {
        data: a.data.iter().zip(&b.data).map(|(x, y)| f(*x, *y)).collect(),
        ..a
    };
    match mode {
        MaskMode::Full => Plane::filled(r, r, 1.0),
        MaskMode::Dst => {
            // Pixel centres sit at +0.5; the filler tests integer coordinates.
            let hull: Vec<[f64; 2]> = convex_hull(landmarks_in_crop)
                .into_iter()
                .map(|p| [p[0] - 0.5, p[1] - 0.5])
                .collect();
            Plane {
                width: r,
                height: r,
                data: fill_convex(&hull, r),
            }
        }
        MaskMode::LearnedPrd => prd(),
        MaskMode::LearnedDst => dst(),
        MaskMode::LearnedPrdTimesDst => zip(prd(), dst(), |a, b| a * b),
        MaskMode::LearnedPrdPlusDst => zip(prd(), dst(), |a, b| (a + b).min(1.0)),
        MaskMode::XsegPrd => xprd(),
        MaskMode::XsegDst => xdst(),
        MaskMode::XsegPrdTimesDst => zip(xprd(), xdst(), |a, b| a * b),
        MaskMode::LearnedTimesXseg => zip(
            zip(prd(), dst(), |a, b| a * b),
            zip(xprd(), xdst(), |a, b| a * b),
            |a, b| a * b,
        ),
        // Resolved by the caller from the face's stored masks.
        MaskMode::Stored => Plane::filled(r, r, 1.0),
    }
}

/// A rectangle of frame pixels with float RGB, the working area around one face.
struct Region {
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
}

impl Region {
    /// The frame pixels the crop square covers (under `frame_to_crop`), plus a pixel of margin.
    fn of(frame: &RgbFrame, frame_to_crop: &Affine, size: usize) -> Option<Region> {
        let inv = frame_to_crop.inverse()?;
        let s = size as f64;
        let corners = [[0.0, 0.0], [s, 0.0], [0.0, s], [s, s]].map(|p| inv.apply(p));
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for c in corners {
            for k in 0..2 {
                lo[k] = lo[k].min(c[k]);
                hi[k] = hi[k].max(c[k]);
            }
        }
        let (fw, fh) = (frame.width as f64, frame.height as f64);
        let x0 = (lo[0].floor() - 1.0).clamp(0.0, fw);
        let y0 = (lo[1].floor() - 1.0).clamp(0.0, fh);
        let x1 = (hi[0].ceil() + 1.0).clamp(0.0, fw);
        let y1 = (hi[1].ceil() + 1.0).clamp(0.0, fh);
        if x1 - x0 < 1.0 || y1 - y0 < 1.0 {
            return None;
        }
        Some(Region {
            x0: x0 as usize,
            y0: y0 as usize,
            w: (x1 - x0) as usize,
            h: (y1 - y0) as usize,
        })
    }
}

/// Bilinear RGB sample of a row-major square image at continuous coordinates; None outside.
#[inline]
fn sample_rgb(img: &[Rgb], size: usize, x: f32, y: f32) -> Option<Rgb> {
    let s = size as f32;
    if !(0.0..=s).contains(&x) || !(0.0..=s).contains(&y) {
        return None;
    }
    // Held at the edge: the square's border pixels extend to its boundary.
    let (x, y) = ((x - 0.5).clamp(0.0, s - 1.0), (y - 0.5).clamp(0.0, s - 1.0));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(size - 1), (y0 + 1).min(size - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let (a, b, c, d) = (
        img[y0 * size + x0],
        img[y0 * size + x1],
        img[y1 * size + x0],
        img[y1 * size + x1],
    );
    Some(std::array::from_fn(|k| {
        (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy
    }))
}

/// Scales a frame→crop matrix about the crop centre so the pasted face grows by `scale`.
fn scaled_about_centre(m: &Affine, size: usize, scale: f64) -> Affine {
    let c = size as f64 / 2.0;
    let k = 1.0 / scale;
    Affine([[k, 0.0, c - k * c], [0.0, k, c - k * c]]).then_after(m)
}

#[allow(clippy::too_many_arguments)]
fn merge_face(
    out: &mut RgbFrame,
    original: &RgbFrame,
    frame_to_crop: &Affine,
    target: &TargetFace,
    dst_face: &[Rgb],
    pred: Prediction,
    xseg: Option<&(Plane, Plane)>,
    r: usize,
    s: &MergeSettings,
    mask: Option<&mut Plane>,
) {
    let mut face = pred.face.clone();
    let lm_crop: Vec<[f64; 2]> = target
        .landmarks
        .iter()
        .map(|p| frame_to_crop.apply(*p))
        .collect();
    let wrk = match (&s.mask_mode, &target.mask) {
        (MaskMode::Stored, Some(m)) => m
            .project(frame_to_crop, r)
            .unwrap_or_else(|_| working_mask(MaskMode::Dst, &lm_crop, &pred, None, r)),
        (MaskMode::Stored, None) => working_mask(MaskMode::Dst, &lm_crop, &pred, None, r),
        (mode, _) => working_mask(*mode, &lm_crop, &pred, xseg, r),
    };
    let area: Vec<f32> = wrk
        .data
        .iter()
        .map(|v| if *v >= 1.0 / 255.0 { 1.0 } else { 0.0 })
        .collect();
    let sub = 4 * r;
    let blend_mask = if s.mode == MergeMode::RawRgb {
        Plane::filled(sub, sub, 1.0)
    } else {
        mask::process(&wrk.resized(sub), s.erode, s.blur)
    };
    let stats = color::StatsMask {
        weights: &area,
        statistics: s.mask_statistics,
    };
    if !s.mode.is_raw() && !s.mode.is_seamless() {
        color::transfer(s.color, &mut face, dst_face, r, Some(stats), s.seed);
    }
    if s.mode == MergeMode::HistMatch {
        let m = s.masked_hist_match.then_some(area.as_slice());
        color::hist_match(&mut face, dst_face, m, s.hist_match_threshold);
    }

    let out_mat = scaled_about_centre(frame_to_crop, r, 1.0 + 0.01 * s.face_scale as f64);
    let Some(region) = Region::of(original, &out_mat, r) else {
        return;
    };
    let fw = original.width as usize;
    let m = out_mat.0.map(|row| row.map(|v| v as f32));
    // Per region pixel: the blend weight and the warped face (None outside the square).
    let n = region.w * region.h;
    let mut weight = vec![0f32; n];
    let mut warped: Vec<Option<Rgb>> = vec![None; n];
    let k = (sub / r) as f32;
    for y in 0..region.h {
        for x in 0..region.w {
            let (fx, fy) = ((region.x0 + x) as f32 + 0.5, (region.y0 + y) as f32 + 0.5);
            let cx = m[0][0] * fx + m[0][1] * fy + m[0][2];
            let cy = m[1][0] * fx + m[1][1] * fy + m[1][2];
            let i = y * region.w + x;
            warped[i] = sample_rgb(&face, r, cx, cy);
            if warped[i].is_some() {
                let wv = blend_mask.sample(cx * k, cy * k).clamp(0.0, 1.0);
                weight[i] = if wv < 1.0 / 255.0 {
                    0.0
                } else {
                    wv * s.opacity
                };
            }
        }
    }
    let orig_px = |i: usize| -> Rgb {
        let (x, y) = (region.x0 + i % region.w, region.y0 + i / region.w);
        let o = (y * fw + x) * 3;
        [
            original.data[o] as f32 / 255.0,
            original.data[o + 1] as f32 / 255.0,
            original.data[o + 2] as f32 / 255.0,
        ]
    };
    // The face as it will be blended: warped prediction, or its seamless clone.
    let mut pasted: Vec<Rgb> = (0..n)
        .map(|i| warped[i].unwrap_or_else(|| orig_px(i)))
        .collect();
    if s.mode.is_seamless() {
        seamless_clone(&mut pasted, &weight, region.w, region.h, &orig_px);
    }
    if s.mode.is_seamless()
        && (s.color != ColorTransfer::None || s.mode == MergeMode::SeamlessHistMatch)
    {
        // DFL recolours after the clone, in the crop, against the destination face.
        let blended: Vec<Rgb> = (0..n)
            .map(|i| lerp(orig_px(i), pasted[i], weight[i]))
            .collect();
        let mut crop = resample_to_crop(&blended, &region, frame_to_crop, r);
        color::transfer(s.color, &mut crop, dst_face, r, Some(stats), s.seed);
        if s.mode == MergeMode::SeamlessHistMatch {
            color::hist_match(&mut crop, dst_face, None, s.hist_match_threshold);
        }
        let fm = frame_to_crop.0.map(|row| row.map(|v| v as f32));
        for (i, p) in pasted.iter_mut().enumerate() {
            let (fx, fy) = (
                (region.x0 + i % region.w) as f32 + 0.5,
                (region.y0 + i / region.w) as f32 + 0.5,
            );
            let cx = fm[0][0] * fx + fm[0][1] * fy + fm[0][2];
            let cy = fm[1][0] * fx + fm[1][1] * fy + fm[1][2];
            if let Some(v) = sample_rgb(&crop, r, cx, cy) {
                *p = v;
            }
        }
    }
    if s.motion_blur > 0 && target.motion.power > 0.0 {
        let len = ((target.motion.power * s.motion_blur as f64 / 100.0) as usize + 1).clamp(2, 50);
        pasted = motion_blur(&pasted, region.w, region.h, len, target.motion.angle);
    }
    if s.sharpen != 0 {
        pasted = sharpen(&pasted, region.w, region.h, s.sharpen, s.sharpen_kind, r);
    }
    if let Some(m) = mask {
        for (i, wv) in weight.iter().enumerate() {
            let (x, y) = (region.x0 + i % region.w, region.y0 + i / region.w);
            if let Some(v) = m.data.get_mut(y * m.width + x) {
                *v = v.max(*wv);
            }
        }
    }
    for (i, p) in pasted.iter().enumerate() {
        let wv = weight[i];
        if wv <= 0.0 {
            continue; // untouched: the original bytes stay
        }
        let (x, y) = (region.x0 + i % region.w, region.y0 + i / region.w);
        let o = (y * fw + x) * 3;
        let v = lerp(orig_px(i), *p, wv);
        out.data[o] = to_byte(v[0]);
        out.data[o + 1] = to_byte(v[1]);
        out.data[o + 2] = to_byte(v[2]);
    }
}

#[inline]
fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    std::array::from_fn(|k| a[k] * (1.0 - t) + b[k] * t)
}

/// The region's pixels sampled into the `r × r` crop (bilinear in frame pixels).
fn resample_to_crop(px: &[Rgb], region: &Region, frame_to_crop: &Affine, r: usize) -> Vec<Rgb> {
    let Some(inv) = frame_to_crop.inverse() else {
        return vec![[0.0; 3]; r * r];
    };
    let mut out = Vec::with_capacity(r * r);
    for v in 0..r {
        for u in 0..r {
            let p = inv.apply([u as f64 + 0.5, v as f64 + 0.5]);
            let x = (p[0] - region.x0 as f64 - 0.5).clamp(0.0, region.w as f64 - 1.0);
            let y = (p[1] - region.y0 as f64 - 0.5).clamp(0.0, region.h as f64 - 1.0);
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(region.w - 1), (y0 + 1).min(region.h - 1));
            let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
            let at = |xx: usize, yy: usize| px[yy * region.w + xx];
            let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
            out.push(std::array::from_fn(|k| {
                (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy
            }));
        }
    }
    out
}

/// Poisson (seamless) cloning, OpenCV NORMAL_CLONE's maths: inside the cloning area the result
/// keeps the pasted face's gradients and meets the original frame on the area's border. Solved
/// for the correction `c = result − pasted`, which is harmonic inside with `original − pasted`
/// on the border: coarse-to-fine, Gauss–Seidel on each level.
fn seamless_clone(
    pasted: &mut [Rgb],
    weight: &[f32],
    w: usize,
    h: usize,
    original: &dyn Fn(usize) -> Rgb,
) {
    // DFL: the cloning area is the mask thresholded at the first tenth that keeps any pixel.
    let mut inside = vec![false; w * h];
    for t in 1..10 {
        let th = t as f32 / 10.0;
        if weight.iter().any(|v| *v > th) {
            for (a, v) in inside.iter_mut().zip(weight) {
                *a = *v > th;
            }
            break;
        }
    }
    if !inside.iter().any(|v| *v) {
        return;
    }
    // Border values: original − pasted wherever outside the area.
    let fixed: Vec<[f32; 3]> = (0..w * h)
        .map(|i| {
            let (o, p) = (original(i), pasted[i]);
            [o[0] - p[0], o[1] - p[1], o[2] - p[2]]
        })
        .collect();
    let correction = solve_harmonic(&inside, &fixed, w, h, 0);
    for (i, p) in pasted.iter_mut().enumerate() {
        if inside[i] {
            for k in 0..3 {
                p[k] += correction[i][k];
            }
        }
    }
}

/// Harmonic interpolation: `x = fixed` outside `inside`, Δx = 0 inside. Solved on a half-size
/// grid first (recursively) to start Gauss–Seidel close to the answer.
fn solve_harmonic(inside: &[bool], fixed: &[Rgb], w: usize, h: usize, depth: usize) -> Vec<Rgb> {
    let mut x: Vec<Rgb> = fixed.to_vec();
    let start_iters = if w.min(h) > 24 && depth < 8 {
        // Coarse level: a cell is inside when all its pixels are.
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut cin = vec![true; cw * ch];
        let mut cfix = vec![[0f32; 3]; cw * ch];
        let mut count = vec![0f32; cw * ch];
        for y in 0..h {
            for xx in 0..w {
                let c = (y / 2) * cw + xx / 2;
                cin[c] &= inside[y * w + xx];
                if !inside[y * w + xx] {
                    for k in 0..3 {
                        cfix[c][k] += fixed[y * w + xx][k];
                    }
                    count[c] += 1.0;
                }
            }
        }
        for (f, n) in cfix.iter_mut().zip(&count) {
            if *n > 0.0 {
                f.iter_mut().for_each(|v| *v /= n);
            }
        }
        let coarse = solve_harmonic(&cin, &cfix, cw, ch, depth + 1);
        for y in 0..h {
            for xx in 0..w {
                if inside[y * w + xx] {
                    x[y * w + xx] = coarse[(y / 2) * cw + xx / 2];
                }
            }
        }
        40
    } else {
        400
    };
    // Gauss–Seidel with over-relaxation, edges mirror.
    let omega = 1.8f32;
    for _ in 0..start_iters {
        for y in 0..h {
            for xx in 0..w {
                let i = y * w + xx;
                if !inside[i] {
                    continue;
                }
                let l = if xx > 0 { i - 1 } else { i };
                let r = if xx + 1 < w { i + 1 } else { i };
                let u = if y > 0 { i - w } else { i };
                let d = if y + 1 < h { i + w } else { i };
                let avg: Rgb =
                    std::array::from_fn(|k| (x[l][k] + x[r][k] + x[u][k] + x[d][k]) * 0.25);
                for (v, a) in x[i].iter_mut().zip(avg) {
                    *v += omega * (a - *v);
                }
            }
        }
    }
    x
}

/// DFL's linear motion blur: a line kernel of `len` pixels along `angle`, normalised.
fn motion_blur(px: &[Rgb], w: usize, h: usize, len: usize, angle: f64) -> Vec<Rgb> {
    let (dx, dy) = (angle.cos(), angle.sin());
    let half = (len as f64 - 1.0) / 2.0;
    let taps: Vec<(isize, isize)> = (0..len)
        .map(|t| {
            let s = t as f64 - half;
            ((s * dx).round() as isize, (s * dy).round() as isize)
        })
        .collect();
    let mut out = vec![[0f32; 3]; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut acc = [0f32; 3];
            for (tx, ty) in &taps {
                let sx = (x + tx).clamp(0, w as isize - 1) as usize;
                let sy = (y + ty).clamp(0, h as isize - 1) as usize;
                let p = px[sy * w + sx];
                for k in 0..3 {
                    acc[k] += p[k];
                }
            }
            out[y as usize * w + x as usize] = acc.map(|a| a / taps.len() as f32);
        }
    }
    out
}

/// Sharpen (`amount > 0`, percent) or soften (`< 0`) the face region.
fn sharpen(px: &[Rgb], w: usize, h: usize, amount: i32, kind: SharpenKind, r: usize) -> Vec<Rgb> {
    let plane = |k: usize| Plane {
        width: w,
        height: h,
        data: px.iter().map(|p| p[k]).collect(),
    };
    let blurred: Vec<Plane> = (0..3)
        .map(|k| match kind {
            SharpenKind::Box => box_blur3(&plane(k)),
            SharpenKind::Gaussian => mask::gaussian_blur(&plane(k), 3),
            // faceswap's unsharp radius: 0.3 % of the face, at least 1 px.
            SharpenKind::Unsharp => mask::gaussian_blur(
                &plane(k),
                (2 * ((r as f32 * 0.003).ceil() as usize).max(1) + 1).max(3),
            ),
        })
        .collect();
    let a = amount as f32 / 100.0;
    px.iter()
        .enumerate()
        .map(|(i, p)| {
            std::array::from_fn(|k| {
                let b = blurred[k].data[i];
                if a >= 0.0 {
                    let d = p[k] - b;
                    // Unsharp leaves differences under faceswap's threshold (5/255) alone.
                    if kind == SharpenKind::Unsharp && d.abs() < 5.0 / 255.0 {
                        p[k]
                    } else {
                        (p[k] + a * d).clamp(0.0, 1.0)
                    }
                } else {
                    p[k] + (-a) * (b - p[k])
                }
            })
        })
        .collect()
}

fn box_blur3(p: &Plane) -> Plane {
    let (w, h) = (p.width, p.height);
    let mut out = p.clone();
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let sx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                    let sy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                    acc += p.data[sy * w + sx];
                }
            }
            out.data[y * w + x] = acc / 9.0;
        }
    }
    out
}

#[cfg(test)]
mod tests;
