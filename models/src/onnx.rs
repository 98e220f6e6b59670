//! Loading the ONNX Runtime shared library (from the PyPI `onnxruntime` wheel; shared/STACK.md).

use std::path::Path;

use thiserror::Error;

/// ONNX Runtime could not be loaded.
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
}

/// Loads ONNX Runtime from `path` for this process and returns its build info string.
pub fn load_onnx_runtime(path: &Path) -> Result<String, OnnxRuntimeError> {
    if !path.is_file() {
        return Err(OnnxRuntimeError::Missing(path.display().to_string()));
    }
    ort::init_from(path).map_err(|e| OnnxRuntimeError::Load {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(ort::info().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bogus_libraries_give_clear_errors() {
        let err = load_onnx_runtime(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert!(err.to_string().contains("assets fetch"), "{err}");
        let dir = std::env::temp_dir().join(format!("fspp-ort-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bogus = dir.join("libonnxruntime.so");
        std::fs::write(&bogus, b"not a shared library").unwrap();
        let err = load_onnx_runtime(&bogus).unwrap_err();
        assert!(matches!(err, OnnxRuntimeError::Load { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
