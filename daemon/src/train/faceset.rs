//! A faceset for training: the aligned face PNGs written by extraction, with their landmarks,
//! held in memory at the training resolution.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::faceset::store::{Alignments, StoredFace};
use crate::faceset::{ALIGNMENTS_FILE, read_face_meta};
use crate::geometry::Centering;
use crate::masks::rules::MaskRules;

/// One aligned face at the training resolution.
#[derive(Debug, Clone)]
pub struct TrainingFace {
    /// `R × R × 3` RGB bytes.
    pub rgb: Vec<u8>,
    /// The 68 landmarks in this face's pixels (at resolution `R`).
    pub landmarks: [[f64; 2]; 68],
    /// Yaw proxy in [−1, 1] (nose offset from the jaw's midline), for uniform-yaw sampling.
    pub yaw: f64,
    /// The file it came from.
    pub file: PathBuf,
    /// How it was cropped.
    pub centering: Centering,
    /// The stored mask the mask rules picked for this face (name, `R × R` plane in this face's
    /// pixels); `None` trains with the landmark hull.
    pub mask: Option<(String, Vec<f32>)>,
}

/// The faces of one side.
#[derive(Debug, Clone)]
pub struct Faceset {
    /// Side length of every face.
    pub resolution: usize,
    /// The faces, in file-name order.
    pub faces: Vec<TrainingFace>,
    /// Files that could not be used, with the reason.
    pub skipped: Vec<String>,
}

/// Where a faceset's stored masks come from: its alignments store and the rules that pick one
/// mask per face (the same rules convert's `stored` mask mode uses).
struct MaskSource {
    rules: MaskRules,
    /// Aligned face file name → (frame index, the stored face).
    faces: std::collections::HashMap<String, (u64, StoredFace)>,
}

impl MaskSource {
    /// Reads the alignments store beside the faces (`<faceset>/alignments.fsppa`).
    fn open(dir: &Path, folder: &Path, rules: &MaskRules) -> Result<MaskSource, FacesetError> {
        let store_path = [
            dir.join(ALIGNMENTS_FILE),
            folder.join("..").join(ALIGNMENTS_FILE),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| FacesetError::NoStore(dir.to_path_buf()))?;
        let store = Alignments::load(&store_path)
            .map_err(|e| FacesetError::Store(store_path.clone(), e.to_string()))?;
        let mut faces = std::collections::HashMap::new();
        for (frame, entry) in store.frames {
            for face in entry.faces {
                let name = face
                    .file
                    .as_deref()
                    .and_then(|f| Path::new(f).file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                if let Some(name) = name {
                    faces.insert(name, (frame, face));
                }
            }
        }
        Ok(MaskSource {
            rules: rules.clone(),
            faces,
        })
    }

    /// The mask the rules pick for `file`, projected into its crop at `r`.
    fn mask_for(
        &self,
        file: &Path,
        meta: &crate::faceset::FaceMeta,
        r: usize,
    ) -> Result<Option<(String, Vec<f32>)>, String> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((frame, face)) = self.faces.get(&name) else {
            return Ok(None);
        };
        let Some((pick, stored)) = face.mask_by_rules(*frame, &self.rules) else {
            return Ok(None);
        };
        let plane = stored
            .project(&meta.crop_at(r), r)
            .map_err(|e| format!("{}: mask {pick}: {e}", file.display()))?;
        Ok(Some((pick.to_string(), plane.data)))
    }
}

/// Why a faceset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FacesetError {
    /// The folder is missing or unreadable.
    #[error("cannot read faceset folder {0}: {1}")]
    Folder(PathBuf, std::io::Error),
    /// Mask rules were given but the faceset has no alignments store to hold masks.
    #[error(
        "mask rules were given but {0} has no alignments.fsppa; point --a/--b at the folder `faceswapd extract` wrote, or train without --mask-rules"
    )]
    NoStore(PathBuf),
    /// The alignments store could not be read.
    #[error("cannot read the masks in {0}: {1}")]
    Store(PathBuf, String),
    /// Not one usable face.
    #[error(
        "faceset {0} has no usable faces ({1} file(s) skipped); point it at the folder written by `faceswapd extract` (or its faces/ subfolder)"
    )]
    Empty(PathBuf, usize),
}

/// Loads every aligned face PNG in `dir` (or in `dir/faces` when that exists — the layout
/// `extract` writes; its `rejected/` folder is never used), resized to `resolution`. Files
/// without Faceswap++ metadata or with unreadable pixels are listed in `skipped`. With `rules`,
/// each face takes the stored mask the rules pick for its frame (faces without one keep the
/// landmark hull).
pub fn load_faceset(
    dir: &Path,
    resolution: usize,
    rules: Option<&MaskRules>,
) -> Result<Faceset, FacesetError> {
    let folder = if dir.join("faces").is_dir() {
        dir.join("faces")
    } else {
        dir.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map_err(|e| FacesetError::Folder(folder.clone(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    let masks = rules
        .map(|r| MaskSource::open(dir, &folder, r))
        .transpose()?;
    let mut faces = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for file in files {
        match load_face(&file, resolution, masks.as_ref()) {
            Ok(face) => faces.push(face),
            Err(why) => skipped.push(why),
        }
    }
    if faces.is_empty() {
        return Err(FacesetError::Empty(folder, skipped.len()));
    }
    Ok(Faceset {
        resolution,
        faces,
        skipped,
    })
}

fn load_face(
    file: &Path,
    resolution: usize,
    masks: Option<&MaskSource>,
) -> Result<TrainingFace, String> {
    let meta = read_face_meta(file)?;
    if meta.landmarks.len() != 68 {
        return Err(format!(
            "{}: {} landmarks, expected 68",
            file.display(),
            meta.landmarks.len()
        ));
    }
    let img = image::open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .to_rgb8();
    let scale = resolution as f64 / img.width().max(1) as f64;
    let img = if img.width() as usize == resolution && img.height() as usize == resolution {
        img
    } else {
        image::imageops::resize(
            &img,
            resolution as u32,
            resolution as u32,
            FilterType::Triangle,
        )
    };
    let mut landmarks = [[0.0; 2]; 68];
    for (out, p) in landmarks.iter_mut().zip(&meta.landmarks) {
        let q = meta.crop.apply(*p);
        *out = [q[0] * scale, q[1] * scale];
    }
    let mask = match masks {
        Some(m) => m.mask_for(file, &meta, resolution)?,
        None => None,
    };
    Ok(TrainingFace {
        rgb: img.into_raw(),
        mask,
        yaw: yaw_proxy(&landmarks),
        landmarks,
        file: file.to_path_buf(),
        centering: meta.centering,
    })
}

impl Faceset {
    /// How many faces use each stored mask, by name (faces on the hull are not counted).
    pub fn mask_counts(&self) -> std::collections::BTreeMap<&str, usize> {
        let mut out = std::collections::BTreeMap::new();
        for (name, _) in self.faces.iter().filter_map(|f| f.mask.as_ref()) {
            *out.entry(name.as_str()).or_insert(0) += 1;
        }
        out
    }

    /// The one centering all its faces share, or an error naming two that differ.
    pub fn centering(&self) -> Result<Centering, String> {
        let first = &self.faces[0];
        match self.faces.iter().find(|f| f.centering != first.centering) {
            None => Ok(first.centering),
            Some(other) => Err(format!(
                "{} was cropped as {} but {} as {}; extract every face of a faceset with one --centering",
                first.file.display(),
                first.centering.name(),
                other.file.display(),
                other.centering.name()
            )),
        }
    }
}

/// Nose tip (30) offset from the midpoint of the jaw ends (0, 16), over half the jaw width:
/// monotone in yaw, which is all uniform-yaw binning needs.
pub fn yaw_proxy(lm: &[[f64; 2]; 68]) -> f64 {
    let (left, right, nose) = (lm[0], lm[16], lm[30]);
    let half = ((right[0] - left[0]).powi(2) + (right[1] - left[1]).powi(2)).sqrt() / 2.0;
    if half < 1e-6 {
        return 0.0;
    }
    let mid = (left[0] + right[0]) / 2.0;
    ((nose[0] - mid) / half).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaw_proxy_follows_the_nose() {
        let mut lm = [[0.0; 2]; 68];
        lm[0] = [10.0, 50.0];
        lm[16] = [90.0, 50.0];
        lm[30] = [50.0, 60.0];
        assert!(yaw_proxy(&lm).abs() < 1e-12);
        lm[30] = [70.0, 60.0];
        assert!((yaw_proxy(&lm) - 0.5).abs() < 1e-12);
        lm[30] = [0.0, 60.0];
        assert_eq!(yaw_proxy(&lm), -1.0);
    }

    #[test]
    fn a_folder_without_faces_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.png"), b"not a png").unwrap();
        let err = load_faceset(dir.path(), 32, None).unwrap_err().to_string();
        assert!(
            err.contains("no usable faces") && err.contains("1 file"),
            "{err}"
        );
        let err = load_faceset(&dir.path().join("missing"), 32, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read faceset folder"), "{err}");
    }
}
