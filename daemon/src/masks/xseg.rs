//! XSeg as DFL users run it: include/exclude polygons labelled on faces (stored with the faces
//! in the alignments, in frame pixels), a training run on the labelled faces that checkpoints
//! and resumes like swap training, and "apply", which stores an `xseg` mask for every face.
//! Labels are rasterised in order — include fills, exclude clears — as DFL's `seg_ie_polys`.

use std::path::{Path, PathBuf};

use faceswap_models::ComputeBackend;
use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::xseg::{XSeg, XSegOptions, XSegTrainer};
use serde::{Deserialize, Serialize};

use super::{Plane, STORED_SIZE, StoredMask};
use crate::extract::geometry::Affine;
use crate::extract::store::Alignments;
use crate::extract::{ALIGNMENTS_FILE, read_face_meta};
use crate::train::checkpoint::{self, Checkpoint};

/// One labelled polygon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelPolygon {
    /// Include (face) or exclude (hair, hands, glasses…).
    pub include: bool,
    /// Vertices in frame pixels.
    pub points: Vec<[f64; 2]>,
}

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
    pub backend: ComputeBackend,
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
struct Labelled {
    rgb: Vec<f32>,
    mask: Vec<f32>,
}

fn crop_planes(png: &Path, r: usize) -> Result<(Vec<f32>, crate::extract::FaceMeta), String> {
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

/// Frame → pixels of the crop `meta` describes, resampled to `r`.
fn crop_at(meta: &crate::extract::FaceMeta, r: usize) -> Affine {
    let k = r as f64 / meta.size.max(1) as f64;
    Affine([[k, 0.0, 0.0], [0.0, k, 0.0]]).then_after(&meta.crop)
}

fn labelled_faces(facesets: &[PathBuf], r: usize) -> Result<Vec<Labelled>, String> {
    let mut out = Vec::new();
    for set in facesets {
        let store = Alignments::load(&set.join(ALIGNMENTS_FILE)).map_err(|e| e.to_string())?;
        for f in store.frames.values().flat_map(|e| &e.faces) {
            let (Some(file), false) = (&f.file, f.labels.is_empty()) else {
                continue;
            };
            let (rgb, meta) = crop_planes(&set.join(file), r)?;
            let mask = rasterize_labels(&f.labels, &crop_at(&meta, r), r).data;
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
        .backend
        .device()
        .ok_or_else(|| format!("no {} backend", req.backend.name()))?
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
            },
        )
        .map_err(|e| e.to_string())
    };
    let batch = req.batch.max(1);
    while trainer.step() < req.steps {
        // Faces and flips are a function of (seed, step): a resumed run draws the same batches.
        let mut state = faceswap_models::train::step_seed(file.seed, trainer.step());
        let mut next = || {
            state = splitmix(state);
            state
        };
        let (mut rgb, mut mask) = (
            Vec::with_capacity(batch * 3 * r * r),
            Vec::with_capacity(batch * r * r),
        );
        for _ in 0..batch {
            let f = &faces[(next() % faces.len() as u64) as usize];
            let flip = next() & 1 == 1;
            for c in 0..4 {
                let src = if c < 3 {
                    &f.rgb[c * r * r..(c + 1) * r * r]
                } else {
                    &f.mask[..]
                };
                let dst = if c < 3 { &mut rgb } else { &mut mask };
                for y in 0..r {
                    for x in 0..r {
                        let sx = if flip { r - 1 - x } else { x };
                        dst.push(src[y * r + sx]);
                    }
                }
            }
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

/// SplitMix64: the batch picker's numbers.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
    backend: ComputeBackend,
) -> Result<usize, String> {
    let device: Device = backend
        .device()
        .ok_or_else(|| format!("no {} backend", backend.name()))?;
    let (model, r) = load_xseg(model_dir, &device)?;
    let path = faceset.join(ALIGNMENTS_FILE);
    let mut store = Alignments::load(&path).map_err(|e| e.to_string())?;
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
        let matrix = crop_at(&meta, STORED_SIZE as usize);
        f.masks
            .insert("xseg".into(), StoredMask::new(&plane, matrix));
        n += 1;
    }
    store.save(&path).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Removes every label from a faceset's faces; returns how many faces had some.
pub fn remove_labels(faceset: &Path) -> Result<usize, String> {
    let path = faceset.join(ALIGNMENTS_FILE);
    let mut store = Alignments::load(&path).map_err(|e| e.to_string())?;
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
    let store = Alignments::load(&faceset.join(ALIGNMENTS_FILE)).map_err(|e| e.to_string())?;
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

/// The daemon job for [`faceswap_protocol::JobSpec::XsegTrain`].
pub fn run_job(
    spec: &faceswap_protocol::JobSpec,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let faceswap_protocol::JobSpec::XsegTrain {
        facesets,
        model_dir,
        settings,
    } = spec
    else {
        return Err(JobError::Failed("not an XSeg training job".into()));
    };
    let backend = crate::train::job_backend()?;
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
        backend,
    };
    ctx.log(format!(
        "training XSeg in {model_dir} on {} on {}",
        facesets.join(", "),
        backend.name()
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
