//! A faceset of a person who does not exist: the pixel-wise average of aligned faces (all
//! cropped alike, so eyes, nose and mouth overlap), written with jittered copies so training
//! sees some variety. The demo swaps this face in, so no real person's identity is used.

use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use crate::faceset::{FaceMeta, encode_face_png, face_files, read_face_meta};
use crate::geometry::{Affine, Centering, legacy_matrix};
use crate::media::RgbFrame;
use crate::sampling::load_image;

/// What [`average_faceset`] made.
#[derive(Debug, Clone)]
pub struct AverageSummary {
    /// Faces averaged.
    pub faces: usize,
    /// Files written.
    pub written: usize,
    /// Side of every face.
    pub size: u32,
    /// Their centering.
    pub centering: Centering,
}

impl AverageSummary {
    /// The summary line for the faceset written in `out`.
    pub fn report(&self, out: &Path) -> String {
        format!(
            "averaged {} faces ({} px, centering {}) into {} files in {}",
            self.faces,
            self.size,
            self.centering.name(),
            self.written,
            out.join("faces").display()
        )
    }
}

/// The daemon job for [`faceswap_protocol::AverageJob`].
pub fn run_job(
    job: &faceswap_protocol::AverageJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    let inputs: Vec<PathBuf> = job.inputs.iter().map(PathBuf::from).collect();
    let out = Path::new(&job.out);
    ctx.progress(0, None, "averaging");
    let s = average_faceset(&inputs, out, job.count as usize, job.seed)
        .map_err(crate::jobs::JobError::Failed)?;
    ctx.log(s.report(out));
    Ok(())
}

/// Averages every accepted face of `inputs` (faceset folders written by extract) and writes
/// the average plus `count − 1` jittered copies (rotation ±5°, scale ±4 %, shift ±2 %,
/// brightness and contrast ±6 %) into `out/faces`, with landmarks, as extract writes faces.
pub fn average_faceset(
    inputs: &[PathBuf],
    out: &Path,
    count: usize,
    seed: u64,
) -> Result<AverageSummary, String> {
    let mut sum: Vec<f64> = Vec::new();
    let mut lm_sum = [[0f64; 2]; 68];
    let mut first: Option<(u32, Centering)> = None;
    let mut n = 0usize;
    for dir in inputs {
        for file in face_files(dir)? {
            let meta = read_face_meta(&file)?;
            if meta.landmarks.len() != 68 || meta.rejected.is_some() {
                continue;
            }
            let (size, centering) = *first.get_or_insert((meta.size, meta.centering));
            if meta.centering != centering || meta.size != size {
                return Err(format!(
                    "{} is {} px {}, the first face was {size} px {}; extract every input with the same --size and --centering",
                    file.display(),
                    meta.size,
                    meta.centering.name(),
                    centering.name()
                ));
            }
            let img = load_image(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            if img.width != size || img.height != size {
                return Err(format!("{}: not {size}×{size}", file.display()));
            }
            if sum.is_empty() {
                sum = vec![0.0; img.data.len()];
            }
            for (s, v) in sum.iter_mut().zip(&img.data) {
                *s += *v as f64;
            }
            for (acc, p) in lm_sum.iter_mut().zip(&meta.landmarks) {
                let q = meta.crop.apply(*p);
                acc[0] += q[0];
                acc[1] += q[1];
            }
            n += 1;
        }
    }
    let Some((size, centering)) = first else {
        return Err("no accepted faces with landmarks in the input facesets; run `faceswapd extract` on them first".into());
    };
    let mean: Vec<f32> = sum.iter().map(|s| (*s / n as f64) as f32).collect();
    let landmarks = lm_sum.map(|p| [p[0] / n as f64, p[1] / n as f64]);
    let faces_dir = out.join("faces");
    std::fs::create_dir_all(&faces_dir)
        .map_err(|e| format!("cannot create {}: {e}", faces_dir.display()))?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let s = size as f64;
    let source = format!(
        "average of {n} faces from {}",
        inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for i in 0..count.max(1) {
        let (jitter, gain, bias) = if i == 0 {
            (Affine::IDENTITY, 1.0f32, 0.0f32)
        } else {
            let angle = rng.random_range(-5.0f64..5.0).to_radians();
            let scale = rng.random_range(0.96..1.04);
            let (dx, dy) = (
                rng.random_range(-0.02..0.02) * s,
                rng.random_range(-0.02..0.02) * s,
            );
            // About the crop centre: c + R·S·(p − c) + d.
            let (sin, cos) = angle.sin_cos();
            let (a, b) = (scale * cos, -scale * sin);
            let (c, d) = (scale * sin, scale * cos);
            let h = s / 2.0;
            (
                Affine([
                    [a, b, h - a * h - b * h + dx],
                    [c, d, h - c * h - d * h + dy],
                ]),
                rng.random_range(0.94f32..1.06),
                rng.random_range(-0.06f32..0.06) * 255.0,
            )
        };
        let img = warp_clamped(&mean, size as usize, &jitter, gain, bias);
        let lm: Vec<[f64; 2]> = landmarks.iter().map(|p| jitter.apply(*p)).collect();
        let mut lm68 = [[0.0; 2]; 68];
        lm68.copy_from_slice(&lm);
        let meta = FaceMeta {
            source: source.clone(),
            frame: i as u64,
            frame_name: format!("average_{i:03}"),
            face_index: 0,
            landmarks: lm,
            legacy: legacy_matrix(&lm68),
            crop: Affine::IDENTITY,
            size,
            centering,
            rejected: None,
        };
        let png = encode_face_png(&img, &meta)?;
        let path = faces_dir.join(format!("average_{i:03}.png"));
        crate::atomic::write_atomic(&path, &png)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(AverageSummary {
        faces: n,
        written: count.max(1),
        size,
        centering,
    })
}

/// `out(p) = gain · src(m⁻¹ p) + bias`, bilinear, edges held (no black corners).
fn warp_clamped(src: &[f32], size: usize, m: &Affine, gain: f32, bias: f32) -> RgbFrame {
    let inv = m.inverse().unwrap_or(Affine::IDENTITY);
    let mut data = Vec::with_capacity(size * size * 3);
    let last = size as f64 - 1.0;
    for y in 0..size {
        for x in 0..size {
            let p = inv.apply([x as f64 + 0.5, y as f64 + 0.5]);
            let (fx, fy) = ((p[0] - 0.5).clamp(0.0, last), (p[1] - 0.5).clamp(0.0, last));
            let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(size - 1), (y0 + 1).min(size - 1));
            let (tx, ty) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
            for c in 0..3 {
                let at = |xx: usize, yy: usize| src[(yy * size + xx) * 3 + c];
                let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
                let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
                let v = (top * (1.0 - ty) + bottom * ty) * gain + bias;
                data.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    RgbFrame {
        width: size as u32,
        height: size as u32,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_face(dir: &Path, name: &str, value: u8, shift: f64) {
        let size = 32u32;
        let img = RgbFrame {
            width: size,
            height: size,
            data: vec![value; (size * size * 3) as usize],
        };
        let lm: Vec<[f64; 2]> = (0..68)
            .map(|i| [8.0 + (i % 17) as f64 + shift, 10.0 + (i / 17) as f64 * 4.0])
            .collect();
        let mut lm68 = [[0.0; 2]; 68];
        lm68.copy_from_slice(&lm);
        let meta = FaceMeta {
            source: "test".into(),
            frame: 0,
            frame_name: name.into(),
            face_index: 0,
            landmarks: lm,
            legacy: legacy_matrix(&lm68),
            crop: Affine::IDENTITY,
            size,
            centering: Centering::DflFull,
            rejected: None,
        };
        std::fs::create_dir_all(dir.join("faces")).unwrap();
        std::fs::write(
            dir.join("faces").join(name),
            encode_face_png(&img, &meta).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn the_average_is_the_mean_of_pixels_and_landmarks() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        write_face(&a, "x.png", 100, 0.0);
        write_face(&b, "y.png", 200, 2.0);
        let out = root.path().join("avg");
        let s = average_faceset(&[a, b], &out, 4, 1).unwrap();
        assert_eq!((s.faces, s.written), (2, 4));
        let first = out.join("faces/average_000.png");
        let img = load_image(&first).unwrap();
        assert!(img.data.iter().all(|v| *v == 150));
        let meta = read_face_meta(&first).unwrap();
        assert!((meta.landmarks[0][0] - 9.0).abs() < 1e-9);
        assert_eq!(std::fs::read_dir(out.join("faces")).unwrap().count(), 4);
        // The jittered copies differ from the average.
        let other = load_image(&out.join("faces/average_002.png")).unwrap();
        assert_ne!(other.data, img.data);
    }
}
