//! Which extractor models a job loads: the configured S3FD / FAN files, else the embedded
//! BlazeFace / FaceMesh nets, with the ONNX Runtime library.

use std::path::PathBuf;

use super::pipeline::ModelFiles;

/// Model files for the extractor: the built-in ones (each checked against its recorded hash),
/// plus the optional S3FD / FAN files named in `[extract]`.
pub fn configured_models(
    dirs: &crate::paths::Dirs,
    cfg: &crate::config::ExtractConfig,
) -> Result<ModelFiles, crate::assets::AssetError> {
    let optional = |p: &str| -> Result<Option<PathBuf>, crate::assets::AssetError> {
        if p.is_empty() {
            return Ok(None);
        }
        let path = PathBuf::from(p);
        if !path.is_file() {
            return Err(crate::assets::AssetError::Missing {
                name: format!("configured model {p}"),
                path,
            });
        }
        Ok(Some(path))
    };
    Ok(ModelFiles {
        s3fd: optional(&cfg.s3fd_model)?,
        fan: optional(&cfg.fan_model)?,
        ..default_models(dirs)?
    })
}

/// Model files for the built-in extractor, each checked against its recorded hash.
pub fn default_models(dirs: &crate::paths::Dirs) -> Result<ModelFiles, crate::assets::AssetError> {
    Ok(ModelFiles {
        s3fd: None,
        fan: None,
        runtime: crate::assets::onnx_runtime_library(dirs)?,
        short_range: crate::assets::verified_model(dirs, "face_detection_short_range.onnx")?,
        full_range: crate::assets::verified_model(dirs, "face_detection_full_range.onnx")?,
        face_mesh: crate::assets::verified_model(dirs, "face_landmark.onnx")?,
    })
}
