//! The preview grid written beside the checkpoints.

use std::path::Path;

use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::train::FaceTrainer;

use super::faceset::Faceset;

use super::*;

/// A preview grid: one row per face (up to 4 from each side), columns A, A→A, A→B, B, B→B, B→A.
pub(super) fn write_preview(
    trainer: &FaceTrainer,
    set_a: &Faceset,
    set_b: &Faceset,
    dir: &Path,
    step: u64,
    device: &Device,
) -> Result<(), TrainError> {
    let r = set_a.resolution;
    let rows = set_a.faces.len().min(set_b.faces.len()).min(4);
    let pick = |set: &Faceset| -> Vec<f32> {
        let mut v = Vec::with_capacity(rows * 3 * r * r);
        for k in 0..rows {
            let f = &set.faces[k * set.faces.len() / rows];
            for c in 0..3 {
                v.extend(f.rgb.iter().skip(c).step_by(3).map(|p| *p as f32 / 255.0));
            }
        }
        v
    };
    let (va, vb) = (pick(set_a), pick(set_b));
    let t =
        |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [rows, 3, r, r]), device);
    let out = trainer.model().forward(t(&va), t(&vb));
    // A failed read-back is an error, never a black preview that looks like a dead model.
    let data = |x: Tensor<4>| {
        // Converted first: a half-precision run predicts f16/bf16 faces.
        x.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| {
                TrainError::State(
                    dir.join(PREVIEW),
                    format!("the preview's predicted faces could not be read back ({e:?})"),
                )
            })
    };
    let columns = [
        va,
        data(out.a.0)?,
        data(out.a_to_b.0)?,
        vb,
        data(out.b.0)?,
        data(out.b_to_a.0)?,
    ];
    let (w, h) = (columns.len() * r, rows * r);
    let mut img = image::RgbImage::new(w as u32, h as u32);
    for (col, planes) in columns.iter().enumerate() {
        for row in 0..rows {
            for y in 0..r {
                for x in 0..r {
                    let at = |c: usize| {
                        planes
                            .get(((row * 3 + c) * r + y) * r + x)
                            .map_or(0, |v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                    };
                    img.put_pixel(
                        (col * r + x) as u32,
                        (row * r + y) as u32,
                        image::Rgb([at(0), at(1), at(2)]),
                    );
                }
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| TrainError::Io(dir.join(PREVIEW), std::io::Error::other(e)))?;
    let history = dir.join("previews");
    std::fs::create_dir_all(&history).map_err(|e| TrainError::Io(history.clone(), e))?;
    for path in [
        dir.join(PREVIEW),
        history.join(format!("step_{step:08}.png")),
    ] {
        crate::atomic::write_atomic(&path, &png).map_err(|e| TrainError::Io(path, e))?;
    }
    Ok(())
}
