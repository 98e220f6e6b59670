//! ONNX Runtime (the shared library from the PyPI `onnxruntime` wheel; shared/STACK.md): loading
//! it once per process, and running pretrained nets on NCHW `f32` tensors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use thiserror::Error;

/// ONNX Runtime or a model could not be used.
#[derive(Debug, Error)]
pub enum OnnxRuntimeError {
    /// The library file is not there.
    #[error("ONNX Runtime library not found at {0} (run `faceswapd assets fetch --runtime`)")]
    Missing(String),
    /// The file exists but does not load as a usable ONNX Runtime (wrong file, too old, wrong arch).
    #[error(
        "cannot load ONNX Runtime from {path}: {reason} (expected onnxruntime 1.31.1; run `faceswapd assets fetch --runtime`)"
    )]
    Load {
        /// The file.
        path: String,
        /// Loader message.
        reason: String,
    },
    /// A model file is missing, unreadable, or not the model it should be.
    #[error("model {path}: {reason}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Inference failed (wrong input shape for this model, runtime error).
    #[error("running {model}: {reason}")]
    Run {
        /// Model name.
        model: String,
        /// Runtime message.
        reason: String,
    },
}

struct Runtime {
    env: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Loads ONNX Runtime from `path` for this process (once; later calls reuse it) and returns its
/// build info string.
pub fn load_onnx_runtime(path: &Path) -> Result<String, OnnxRuntimeError> {
    runtime(path)?;
    Ok(ort::info().to_string())
}

fn runtime(path: &Path) -> Result<&'static Runtime, OnnxRuntimeError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    if !path.is_file() {
        return Err(OnnxRuntimeError::Missing(path.display().to_string()));
    }
    let load = |reason: String| OnnxRuntimeError::Load {
        path: path.display().to_string(),
        reason,
    };
    let env = ort::init_from(path)
        .map_err(|e| load(e.to_string()))?
        .with_name("faceswappp")
        .build()
        .map_err(|e| load(e.to_string()))?;
    let _ = RUNTIME.set(Runtime { env });
    RUNTIME
        .get()
        .ok_or_else(|| load("initialisation raced and failed".into()))
}

/// One model output: its shape and its values, flattened.
pub type OutputTensor = (Vec<i64>, Vec<f32>);

/// A loaded ONNX model with one NCHW `f32` input.
pub struct OnnxModel {
    name: String,
    session: Session,
}

impl OnnxModel {
    /// Loads `model` with the runtime at `runtime_lib`, single-threaded inside (the pipeline
    /// parallelises across frames instead).
    pub fn load(runtime_lib: &Path, model: &Path, name: &str) -> Result<Self, OnnxRuntimeError> {
        let rt = runtime(runtime_lib)?;
        let bad = |reason: String| OnnxRuntimeError::Model {
            path: model.to_path_buf(),
            reason,
        };
        if !model.is_file() {
            return Err(bad("missing (run `faceswapd assets fetch --models`)".into()));
        }
        let session = Session::builder(&rt.env)
            .map_err(|e| bad(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| bad(e.to_string()))?
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
            .map_err(|e| bad(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| {
                bad(format!(
                    "not a usable ONNX model ({e}); re-run `faceswapd assets fetch --models`"
                ))
            })?;
        Ok(OnnxModel {
            name: name.to_string(),
            session,
        })
    }

    /// Runs the model on one NCHW tensor and returns every output flattened, with its shape.
    pub fn run(
        &mut self,
        shape: [usize; 4],
        input: &[f32],
    ) -> Result<Vec<OutputTensor>, OnnxRuntimeError> {
        let err = |reason: String| OnnxRuntimeError::Run {
            model: self.name.clone(),
            reason,
        };
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| err(e.to_string()))?;
        let outputs =
            self.session
                .run(ort::inputs![tensor])
                .map_err(|e| OnnxRuntimeError::Run {
                    model: self.name.clone(),
                    reason: e.to_string(),
                })?;
        let mut out = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (shape, data) =
                value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| OnnxRuntimeError::Run {
                        model: self.name.clone(),
                        reason: e.to_string(),
                    })?;
            out.push((shape.iter().copied().collect(), data.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bogus_libraries_give_clear_errors() {
        if RUNTIME.get().is_some() {
            return;
        }
        let err = load_onnx_runtime(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(err.to_string().contains("assets fetch"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("libonnxruntime.so");
        std::fs::write(&bogus, b"not a shared library").unwrap();
        let err = load_onnx_runtime(&bogus).unwrap_err();
        assert!(matches!(err, OnnxRuntimeError::Load { .. }), "{err}");
    }
}
