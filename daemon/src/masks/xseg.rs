//! XSeg as DFL users run it: include/exclude polygons labelled on faces (stored with the faces
//! in the alignments, in frame pixels), a training run on the labelled faces that checkpoints
//! and resumes like swap training, and "apply", which stores an `xseg` mask for every face.
//! Labels are rasterised in order — include fills, exclude clears — as DFL's `seg_ie_polys`.

use std::path::{Path, PathBuf};

use faceswap_models::ComputeDevice;
use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::xseg::{XSeg, XSegOptions, XSegTrainer};
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::{Deserialize, Serialize};

use super::{Plane, STORED_SIZE, StoredMask};
use crate::checkpoint::{self, Checkpoint};
use crate::faceset::{load_store, read_face_meta};
use crate::geometry::Affine;
use crate::warp::{
    TransformRanges, WarpGrid, gaussian_blur, random_transform, sample_plane, shift_hsv,
};

pub use crate::faceset::store::LabelPolygon;

/// Rasterises labels into a crop (`frame_to_crop`, `size`²): polygons in order, include sets 1
/// and exclude sets 0, even–odd fill at pixel centres.
pub fn rasterize_labels(labels: &[LabelPolygon], frame_to_crop: &Affine, size: usize) -> Plane {
    let mut out = Plane::filled(size, size, 0.0);
    for poly in labels {
        let pts: Vec<[f64; 2]> = poly
            .points
            .iter()
            .map(|p| frame_to_crop.apply(*p))
            .collect();
        if pts.len() < 3 {
            continue;
        }
        let value = if poly.include { 1.0 } else { 0.0 };
        for y in 0..size {
            let cy = y as f64 + 0.5;
            let mut xs: Vec<f64> = (0..pts.len())
                .filter_map(|i| {
                    let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                    ((a[1] <= cy) != (b[1] <= cy))
                        .then(|| a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]))
                })
                .collect();
            xs.sort_by(f64::total_cmp);
            for pair in xs.chunks_exact(2) {
                let lo = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let hi = ((pair[1] - 0.5).floor() + 1.0).clamp(0.0, size as f64) as usize;
                for x in lo..hi.max(lo) {
                    out.data[y * size + x] = value;
                }
            }
        }
    }
    out
}

/// What `xseg.toml` in an XSeg model folder holds (fixed at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XsegModelFile {
    /// Input side.
    pub resolution: u32,
    /// First-level channels.
    pub base: u32,
    /// Seed of the weights and the batches.
    pub seed: u64,
}

const MODEL_FILE: &str = "xseg.toml";

/// An XSeg training run.
#[derive(Debug, Clone)]
pub struct XsegTrainRequest {
    /// Facesets whose labelled faces are the training material.
    pub facesets: Vec<PathBuf>,
    /// XSeg model folder (created).
    pub model_dir: PathBuf,
    /// Input side for a new model (DFL: 256).
    pub resolution: u32,
    /// First-level channels for a new model (DFL: 32).
    pub base: u32,
    /// Train until this many steps in all.
    pub steps: u64,
    /// Faces per step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed for a new model.
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end).
    pub save_every: u64,
    /// Where it runs.
    pub device: ComputeDevice,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct XsegSummary {
    /// Labelled faces used.
    pub faces: usize,
    /// Step it started from (0, or the checkpoint's).
    pub start_step: u64,
    /// Step it ended at.
    pub end_step: u64,
    /// First and last loss of this run.
    pub losses: Option<(f32, f32)>,
}

/// A labelled face at the model's resolution: `[3, R, R]` planes and its `[R, R]` label.
#[derive(Clone)]
struct Labelled {
    rgb: Vec<f32>,
    mask: Vec<f32>,
}

fn crop_planes(png: &Path, r: usize) -> Result<(Vec<f32>, crate::faceset::FaceMeta), String> {
    let meta = read_face_meta(png)?;
    let img = image::open(png)
        .map_err(|e| format!("{}: {e}", png.display()))?
        .to_rgb8();
    let img = image::imageops::resize(
        &img,
        r as u32,
        r as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut rgb = vec![0f32; 3 * r * r];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            rgb[c * r * r + i] = p.0[c] as f32 / 255.0;
        }
    }
    Ok((rgb, meta))
}

fn labelled_faces(facesets: &[PathBuf], r: usize) -> Result<Vec<Labelled>, String> {
    let mut out = Vec::new();
    for set in facesets {
        let (_, store) = load_store(set)?;
        for f in store.frames.values().flat_map(|e| &e.faces) {
            let (Some(file), false) = (&f.file, f.labels.is_empty()) else {
                continue;
            };
            let (rgb, meta) = crop_planes(&set.join(file), r)?;
            let mask = rasterize_labels(&f.labels, &meta.crop_at(r), r).data;
            out.push(Labelled { rgb, mask });
        }
    }
    Ok(out)
}

fn open_model(dir: &Path, req: &XsegTrainRequest) -> Result<XsegModelFile, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(MODEL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))
        }
        Err(_) => {
            let file = XsegModelFile {
                resolution: req.resolution,
                base: req.base,
                seed: req.seed,
            };
            if !req.resolution.is_multiple_of(16) || req.resolution < 32 {
                return Err(format!(
                    "XSeg resolution {} must be a multiple of 16, at least 32",
                    req.resolution
                ));
            }
            let text = toml::to_string(&file).map_err(|e| e.to_string())?;
            crate::atomic::write_atomic(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(file)
        }
    }
}

fn options(file: &XsegModelFile) -> XSegOptions {
    XSegOptions {
        resolution: file.resolution as usize,
        base: file.base as usize,
    }
}

/// Trains (or resumes training of) an XSeg model on the labelled faces of the facesets.
/// `on_step(step, loss)` returning false stops after a checkpoint.
pub fn train_xseg(
    req: &XsegTrainRequest,
    mut on_step: impl FnMut(u64, f32) -> bool,
) -> Result<XsegSummary, String> {
    let file = open_model(&req.model_dir, req)?;
    let r = file.resolution as usize;
    let faces = labelled_faces(&req.facesets, r)?;
    if faces.is_empty() {
        return Err(
            "no labelled faces in the facesets: label faces (include/exclude polygons) first"
                .into(),
        );
    }
    let device = req
        .device
        .device()
        .ok_or_else(|| format!("no {} backend", req.device))?
        .autodiff();
    let mut trainer = XSegTrainer::new(&options(&file), &device, req.lr, file.seed);
    let (latest, _) = checkpoint::load_latest(&req.model_dir).map_err(|e| e.to_string())?;
    if let Some(ck) = latest {
        trainer
            .restore_state(ck.model, ck.optimizer, ck.step)
            .map_err(|e| e.to_string())?;
    }
    let mut summary = XsegSummary {
        faces: faces.len(),
        start_step: trainer.step(),
        end_step: trainer.step(),
        losses: None,
    };
    let save = |t: &XSegTrainer| -> Result<(), String> {
        let (model, optimizer) = t.save_state().map_err(|e| e.to_string())?;
        checkpoint::save(
            &req.model_dir,
            &Checkpoint {
                step: t.step(),
                model,
                optimizer,
                extra: Vec::new(),
            },
        )
        .map_err(|e| e.to_string())
    };
    let batch = req.batch.max(1);
    while trainer.step() < req.steps {
        let (mut rgb, mut mask) = (
            Vec::with_capacity(batch * 3 * r * r),
            Vec::with_capacity(batch * r * r),
        );
        for slot in 0..batch as u64 {
            // Every draw is a function of (seed, step, slot): a resumed run sees the same batches.
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(faceswap_models::weights::step_seed(
                file.seed,
                trainer.step().wrapping_mul(4096).wrapping_add(slot),
            ));
            let face = &faces[rng.random_range(0..faces.len())];
            let other = &faces[rng.random_range(0..faces.len())];
            let (x, m) = augment_sample(face, other, r, &mut rng, true);
            rgb.extend(x);
            mask.extend(m);
        }
        // [B, 3, R, R] and [B, 1, R, R]
        let images = Tensor::<4>::from_data(TensorData::new(rgb, [batch, 3, r, r]), &device);
        let masks = Tensor::<4>::from_data(TensorData::new(mask, [batch, 1, r, r]), &device);
        let loss = trainer.train_step(images, masks);
        summary.losses = Some((summary.losses.map_or(loss, |l| l.0), loss));
        summary.end_step = trainer.step();
        let stop = !on_step(trainer.step(), loss);
        if stop
            || trainer.step().is_multiple_of(req.save_every.max(1))
            || trainer.step() == req.steps
        {
            save(&trainer)?;
        }
        if stop {
            break;
        }
    }
    Ok(summary)
}

/// `face` (planar RGB and mask) moved by `move_point` (output pixel → source pixel).
fn resample(face: &Labelled, r: usize, move_point: impl Fn([f64; 2]) -> [f64; 2]) -> Labelled {
    let n = r * r;
    let mut out = Labelled {
        rgb: vec![0.0; 3 * n],
        mask: vec![0.0; n],
    };
    for y in 0..r {
        for x in 0..r {
            let p = move_point([x as f64, y as f64]);
            for c in 0..3 {
                out.rgb[c * n + y * r + x] =
                    sample_plane(&face.rgb[c * n..(c + 1) * n], r, p, true);
            }
            out.mask[y * r + x] = sample_plane(&face.mask, r, p, false);
        }
    }
    out
}

/// A random HSV shift of a planar RGB image, in place.
fn random_hsv(rgb: &mut [f32], n: usize, rng: &mut Xoshiro256PlusPlus) {
    let shift = (
        rng.random_range(-0.05..=0.05),
        rng.random_range(-0.25..=0.25),
        rng.random_range(-0.25..=0.25),
    );
    for i in 0..n {
        let px = shift_hsv([rgb[i], rgb[n + i], rgb[2 * n + i]], shift);
        for (c, v) in px.into_iter().enumerate() {
            rgb[c * n + i] = v;
        }
    }
}

/// One XSeg training sample as DFL makes it (samplelib/SampleGeneratorFaceXSeg.py):
/// - half the time, the background outside both masks is blended (15–100% kept) with another
///   labelled face's masked-out surroundings, turned ±180°, scaled ±10%, shifted ±10%, flipped,
///   colour-shifted;
/// - rotation ±10°, scale ±5%, shift ±5%, flip, and DFL's random warp, the same for image and
///   label (the image replicates its border, the label is 0 outside), label thresholded at 0.5;
/// - an HSV shift; a Gaussian blur 25% of the time; a down-and-up resize (to 25–100%) 25% of
///   the time.
///
/// Deviations (documented in ARCHITECTURE.md): no face/background flares, overlay triangles,
/// motion blur, sharpening or JPEG artefacts, and colour shifts cover the whole image rather
/// than a faded circle. `photometric: false` keeps only the geometric part (for tests).
fn augment_sample(
    face: &Labelled,
    other: &Labelled,
    r: usize,
    rng: &mut Xoshiro256PlusPlus,
    photometric: bool,
) -> (Vec<f32>, Vec<f32>) {
    let n = r * r;
    let mut face = face.clone();
    if photometric && rng.random_bool(0.5) {
        let to_out = random_transform(
            r,
            rng,
            TransformRanges {
                rotation_deg: 180.0,
                scale: 0.10,
                shift: 0.10,
                flip: Some(0.5),
            },
        );
        let from_out = to_out.inverse().unwrap_or(Affine::IDENTITY);
        let mut bg = resample(other, r, |p| from_out.apply(p));
        for i in 0..n {
            for c in 0..3 {
                bg.rgb[c * n + i] *= 1.0 - bg.mask[i];
            }
        }
        random_hsv(&mut bg.rgb, n, rng);
        let keep = rng.random_range(0.15f32..=1.0);
        for i in 0..n {
            let c_mask = 1.0 - (1.0 - bg.mask[i]) * (1.0 - face.mask[i]);
            for c in 0..3 {
                let v = face.rgb[c * n + i];
                face.rgb[c * n + i] =
                    v * c_mask + (1.0 - c_mask) * (v * keep + bg.rgb[c * n + i] * (1.0 - keep));
            }
        }
    }
    let to_out = random_transform(
        r,
        rng,
        TransformRanges {
            rotation_deg: 10.0,
            scale: 0.05,
            shift: 0.05,
            flip: Some(0.5),
        },
    );
    let from_out = to_out.inverse().unwrap_or(Affine::IDENTITY);
    let warp = WarpGrid::random(r, rng);
    let mut out = resample(&face, r, |p| warp.displace(from_out.apply(p)));
    for m in &mut out.mask {
        *m = if *m >= 0.5 { 1.0 } else { 0.0 };
    }
    if photometric {
        random_hsv(&mut out.rgb, n, rng);
        if rng.random_bool(0.25) {
            let sigma = rng.random_range(0.5..=1.5) * (r as f64 / 64.0).max(1.0);
            for c in 0..3 {
                let blurred = gaussian_blur(&out.rgb[c * n..(c + 1) * n], r, sigma);
                out.rgb[c * n..(c + 1) * n].copy_from_slice(&blurred);
            }
        }
        if rng.random_bool(0.25) {
            let small = ((r as f64 * rng.random_range(0.25..=1.0)).round() as usize).max(4);
            let k = small as f64 / r as f64;
            // [3, small, small]
            let shrunk: Vec<f32> = (0..3 * small * small)
                .map(|i| {
                    let (c, j) = (i / (small * small), i % (small * small));
                    let p = [(j % small) as f64 / k, (j / small) as f64 / k];
                    sample_plane(&out.rgb[c * n..(c + 1) * n], r, p, true)
                })
                .collect();
            for y in 0..r {
                for x in 0..r {
                    let p = [x as f64 * k, y as f64 * k];
                    for c in 0..3 {
                        let plane = &shrunk[c * small * small..(c + 1) * small * small];
                        out.rgb[c * n + y * r + x] = sample_plane(plane, small, p, true);
                    }
                }
            }
        }
        for v in &mut out.rgb {
            *v = v.clamp(0.0, 1.0);
        }
    }
    (out.rgb, out.mask)
}

/// A trained XSeg model, loaded for inference, with its input side.
pub fn load_xseg(model_dir: &Path, device: &Device) -> Result<(XSeg, usize), String> {
    let text = std::fs::read_to_string(model_dir.join(MODEL_FILE)).map_err(|e| {
        format!(
            "{} is not an XSeg model folder ({e}); train one with `faceswapd xseg train`",
            model_dir.display()
        )
    })?;
    let file: XsegModelFile = toml::from_str(&text).map_err(|e| e.to_string())?;
    let (latest, _) = checkpoint::load_latest(model_dir).map_err(|e| e.to_string())?;
    let ck = latest.ok_or_else(|| format!("{} has no checkpoint yet", model_dir.display()))?;
    let model = XSeg::load(&options(&file), device, ck.model).map_err(|e| e.to_string())?;
    Ok((model, file.resolution as usize))
}

/// Runs an XSeg model on every face's aligned crop and stores the result as the `xseg` mask.
/// Returns how many faces got one.
pub fn apply_xseg(
    faceset: &Path,
    model_dir: &Path,
    compute: ComputeDevice,
) -> Result<usize, String> {
    let device: Device = compute
        .device()
        .ok_or_else(|| format!("no {compute} backend"))?;
    let (model, r) = load_xseg(model_dir, &device)?;
    let (path, mut store) = load_store(faceset)?;
    let mut n = 0;
    for f in store.frames.values_mut().flat_map(|e| e.faces.iter_mut()) {
        let Some(file) = &f.file else {
            continue;
        };
        let (rgb, meta) = crop_planes(&faceset.join(file), r)?;
        // [1, 3, R, R] → [1, 1, R, R]
        let x = Tensor::<4>::from_data(TensorData::new(rgb, [1, 3, r, r]), &device);
        let pred = model
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("reading XSeg's output: {e:?}"))?;
        let plane = Plane {
            width: r,
            height: r,
            data: pred,
        }
        .resized(STORED_SIZE as usize);
        let matrix = meta.crop_at(STORED_SIZE as usize);
        f.masks
            .insert("xseg".into(), StoredMask::new(&plane, matrix));
        n += 1;
    }
    store.save(&path).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Removes every label from a faceset's faces; returns how many faces had some.
pub fn remove_labels(faceset: &Path) -> Result<usize, String> {
    let (path, mut store) = load_store(faceset)?;
    let mut n = 0;
    for f in store.frames.values_mut().flat_map(|e| e.faces.iter_mut()) {
        if !f.labels.is_empty() {
            f.labels.clear();
            n += 1;
        }
    }
    store.save(&path).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Copies the aligned face files of labelled faces into `out` (DFL's "fetch labelled faces").
pub fn fetch_labelled(faceset: &Path, out: &Path) -> Result<usize, String> {
    let (_, store) = load_store(faceset)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut n = 0;
    for f in store.frames.values().flat_map(|e| &e.faces) {
        if let (Some(file), false) = (&f.file, f.labels.is_empty()) {
            let src = faceset.join(file);
            let name = src.file_name().map(|n| n.to_owned()).unwrap_or_default();
            std::fs::copy(&src, out.join(name)).map_err(|e| format!("{}: {e}", src.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The daemon job for [`faceswap_protocol::XsegTrainJob`].
pub fn run_job(
    job: &faceswap_protocol::XsegTrainJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let faceswap_protocol::XsegTrainJob {
        facesets,
        model_dir,
        settings,
    } = job;
    let device = crate::device::job_device(settings.device.as_deref(), ctx)?;
    let req = XsegTrainRequest {
        facesets: facesets.iter().map(PathBuf::from).collect(),
        model_dir: model_dir.into(),
        resolution: settings.resolution,
        base: settings.base,
        steps: settings.steps,
        batch: settings.batch.max(1) as usize,
        lr: settings.lr,
        seed: 0,
        save_every: settings.save_every,
        device,
    };
    ctx.log(format!(
        "training XSeg in {model_dir} on {} on {}",
        facesets.join(", "),
        device
    ));
    let total = settings.steps;
    let result = train_xseg(&req, |step, loss| {
        ctx.progress(step, Some(total), &format!("steps; loss {loss:.4}"));
        !ctx.should_stop()
    });
    match result {
        Ok(s) if s.end_step < total => {
            ctx.log(format!("stopped at step {}; checkpoint saved", s.end_step));
            Err(JobError::Stopped)
        }
        Ok(s) => {
            ctx.log(format!(
                "{} labelled faces; steps {} → {}; loss {}",
                s.faces,
                s.start_step,
                s.end_step,
                s.losses
                    .map_or("-".into(), |(a, b)| format!("{a:.4} → {b:.4}"))
            ));
            Ok(())
        }
        Err(e) => Err(JobError::Failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white disc on black whose label is the same disc.
    fn disc(r: usize, centre: f64, radius: f64) -> Labelled {
        let n = r * r;
        let mut face = Labelled {
            rgb: vec![0.0; 3 * n],
            mask: vec![0.0; n],
        };
        for i in 0..n {
            let (x, y) = ((i % r) as f64, (i / r) as f64);
            if (x - centre).hypot(y - centre) < radius {
                face.mask[i] = 1.0;
                for c in 0..3 {
                    face.rgb[c * n + i] = 1.0;
                }
            }
        }
        face
    }

    #[test]
    fn augmentation_moves_image_and_label_together_and_repeats_per_seed() {
        let r = 64;
        let face = disc(r, 30.0, 14.0);
        let other = disc(r, 20.0, 8.0);
        let mut moved = 0;
        for seed in 0..8 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let (rgb, mask) = augment_sample(&face, &other, r, &mut rng, false);
            // The label is where the image is white (away from the disc's rim).
            let agree = (0..r * r)
                .filter(|&i| (rgb[i] >= 0.5) == (mask[i] >= 0.5))
                .count();
            assert!(
                agree as f64 / (r * r) as f64 > 0.985,
                "seed {seed}: {agree}"
            );
            assert!(mask.iter().all(|v| *v == 0.0 || *v == 1.0), "binary label");
            moved += usize::from(mask != face.mask);
        }
        assert_eq!(moved, 8, "every sample is transformed");
        let draw = |seed| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            augment_sample(&face, &other, r, &mut rng, true)
        };
        assert_eq!(draw(3), draw(3), "a function of the seed");
        assert_ne!(draw(3).0, draw(4).0);
        let (rgb, _) = draw(5);
        assert!(rgb.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn labels_rasterise_in_order_include_then_exclude() {
        let square = |x0: f64, y0: f64, x1: f64, y1: f64, include: bool| LabelPolygon {
            include,
            points: vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        };
        let labels = vec![
            square(10.0, 10.0, 50.0, 50.0, true),
            square(20.0, 20.0, 30.0, 30.0, false),
        ];
        let m = rasterize_labels(&labels, &Affine::IDENTITY, 64);
        let at = |x: usize, y: usize| m.data[y * 64 + x];
        assert_eq!(at(15, 15), 1.0);
        assert_eq!(at(25, 25), 0.0, "excluded");
        assert_eq!(at(5, 5), 0.0);
        assert_eq!(
            m.data.iter().filter(|v| **v > 0.5).count(),
            40 * 40 - 10 * 10
        );
    }
}
