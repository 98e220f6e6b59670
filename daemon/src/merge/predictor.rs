//! A trained swap model (SAEHD or Phaze-A) as the merge's face predictor, shared by offline
//! convert and the plug-in's live render.

use std::path::Path;

use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::{ComputeDevice, FaceModel};

use super::error::ConvertError;
use super::{FacePredictor, Prediction, Rgb};
use crate::checkpoint;
use crate::geometry::Centering;
use crate::masks::plane::Plane;
use crate::train::{MODEL_FILE, ModelFile};

/// A trained swap model (SAEHD or Phaze-A) as merge's predictor.
pub struct ModelPredictor {
    model: FaceModel,
    device: Device,
    resolution: usize,
    centering: Centering,
    xseg: Option<(faceswap_models::xseg::XSeg, usize)>,
    /// The step of the checkpoint loaded.
    pub step: u64,
}

impl ModelPredictor {
    /// Loads the newest valid checkpoint of `model_dir` onto `compute`.
    pub fn open(model_dir: &Path, compute: ComputeDevice) -> Result<Self, ConvertError> {
        let fail = |reason: String| ConvertError::Model {
            path: model_dir.to_path_buf(),
            reason,
        };
        let path = model_dir.join(MODEL_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            fail(format!(
                "cannot read {MODEL_FILE} ({e}): choose a model folder that Faceswap++ training wrote"
            ))
        })?;
        let file: ModelFile = toml::from_str(&text).map_err(|e| {
            fail(format!(
                "{MODEL_FILE} is damaged ({}): restore it from a backup or train again",
                crate::toml_error::one_line(&text, &e)
            ))
        })?;
        let opts = file.options().map_err(fail)?;
        let centering = file.centering().map_err(ConvertError::Settings)?;
        let (latest, _warnings) =
            checkpoint::load_latest(model_dir).map_err(|e| fail(format!("{e}")))?;
        let ck = latest.ok_or_else(|| fail("has no checkpoint yet: train it first".into()))?;
        let device = compute
            .device()
            .ok_or_else(|| fail(format!("the {compute} backend is not built in")))?;
        let model = FaceModel::load(&opts, &device, ck.model).map_err(|e| {
            fail(format!(
                "{e} — its checkpoint was not made for the {} in {MODEL_FILE}; restore the model.toml that came with it or retrain",
                file.describe()
            ))
        })?;
        Ok(ModelPredictor {
            model,
            device,
            resolution: opts.resolution(),
            centering,
            xseg: None,
            step: ck.step,
        })
    }

    /// Adds the XSeg model the XSeg mask modes use.
    pub fn with_xseg(mut self, dir: &Path) -> Result<Self, ConvertError> {
        let loaded = crate::masks::xseg::load_xseg(dir, &self.device).map_err(|reason| {
            ConvertError::Model {
                path: dir.to_path_buf(),
                reason,
            }
        })?;
        self.xseg = Some(loaded);
        Ok(self)
    }
}

impl FacePredictor for ModelPredictor {
    fn resolution(&self) -> usize {
        self.resolution
    }

    fn segment(&mut self, faces: &[Vec<Rgb>]) -> Result<Option<Vec<Plane>>, String> {
        let Some((xseg, xr)) = &self.xseg else {
            return Ok(None);
        };
        let (r, xr, n) = (self.resolution, *xr, faces.len());
        let plane = xr * xr;
        let mut data = vec![0f32; n * 3 * plane];
        for (b, face) in faces.iter().enumerate() {
            // Each channel resampled from R to the XSeg side.
            for c in 0..3 {
                let ch = Plane {
                    width: r,
                    height: r,
                    data: face.iter().map(|p| p[c]).collect(),
                }
                .resized(xr);
                data[(b * 3 + c) * plane..(b * 3 + c + 1) * plane].copy_from_slice(&ch.data);
            }
        }
        // [N, 3, Rx, Rx] → [N, 1, Rx, Rx]
        let x = Tensor::<4>::from_data(TensorData::new(data, [n, 3, xr, xr]), &self.device);
        let out = xseg
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("reading XSeg's output: {e:?}"))?;
        Ok(Some(
            out.chunks_exact(plane)
                .map(|m| Plane {
                    width: xr,
                    height: xr,
                    data: m.to_vec(),
                })
                .collect(),
        ))
    }

    fn centering(&self) -> Centering {
        self.centering
    }

    fn predict(&mut self, faces: &[Vec<Rgb>]) -> Result<Vec<Prediction>, String> {
        let r = self.resolution;
        let n = faces.len();
        let plane = r * r;
        let mut data = vec![0f32; n * 3 * plane];
        for (b, face) in faces.iter().enumerate() {
            if face.len() != plane {
                return Err(format!("face {b} is not {r}×{r}"));
            }
            for (i, p) in face.iter().enumerate() {
                for c in 0..3 {
                    data[(b * 3 + c) * plane + i] = p[c];
                }
            }
        }
        // [N, 3, R, R]
        let x = Tensor::<4>::from_data(TensorData::new(data, [n, 3, r, r]), &self.device);
        let out = self.model.swap(x);
        let read = |t: Tensor<4>| {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("reading the model's output: {e:?}"))
        };
        let (face, fm, dm) = (read(out.face)?, read(out.face_mask)?, read(out.dst_mask)?);
        Ok((0..n)
            .map(|b| {
                let img = (0..plane)
                    .map(|i| std::array::from_fn(|c| face[(b * 3 + c) * plane + i]))
                    .collect();
                let mask = |v: &[f32]| Plane {
                    width: r,
                    height: r,
                    data: v[b * plane..(b + 1) * plane].to_vec(),
                };
                Prediction {
                    face: img,
                    face_mask: mask(&fm),
                    dst_mask: mask(&dm),
                }
            })
            .collect())
    }
}
