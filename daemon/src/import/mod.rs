//! Bringing work done in DeepFaceLab into a Faceswap++ faceset: XSeg editor labels
//! (`seg_ie_polys`) and DFL's stored XSeg masks, attached to the matching faces.

pub mod dfl;

use std::path::{Path, PathBuf};

use crate::extract::ALIGNMENTS_FILE;
use crate::extract::geometry::Affine;
use crate::extract::store::Alignments;
use crate::extract::track::inter_ocular;
use crate::masks::{STORED_SIZE, StoredMask};
use crate::merge::mask::Plane;

/// What an import of DFL labels did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DflLabelImport {
    /// DFL face files read.
    pub files: usize,
    /// Faces that received labels.
    pub labelled: usize,
    /// Faces that received DFL's stored XSeg mask (as `xseg`).
    pub xseg_masks: usize,
    /// DFL files with labels or a mask but no matching face here, with the reason.
    pub unmatched: Vec<String>,
    /// Files that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// A DFL face's landmarks are this close (mean distance over inter-ocular distance) to the
/// face they are matched with; two detectors' landmarks on one face differ by a few percent.
const MATCH_TOLERANCE: f64 = 0.25;

/// Attaches the XSeg labels (and stored XSeg masks) of a folder of DFL aligned faces to the
/// matching faces of `faceset`. A DFL face matches a face of the frame with the same file stem
/// (image folders) or, for DFL's numbered frames (`00001.png`, counted from 1), the frame
/// with that index less one (videos); within the frame, the face whose landmarks are nearest,
/// within [`MATCH_TOLERANCE`]. Labels replace the face's labels. Nothing is written when nothing
/// matched; otherwise the store is saved once, atomically.
pub fn import_dfl_labels(dfl_dir: &Path, faceset: &Path) -> Result<DflLabelImport, String> {
    let store_path = faceset.join(ALIGNMENTS_FILE);
    let mut store = Alignments::load(&store_path).map_err(|e| e.to_string())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dfl_dir)
        .map_err(|e| format!("cannot read {}: {e}", dfl_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("jpg") || x.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    files.sort();
    let mut out = DflLabelImport::default();
    for file in files {
        out.files += 1;
        let face = match dfl::read_dfl_jpg(&file) {
            Ok(f) => f,
            Err(e) => {
                out.errors.push(e.to_string());
                continue;
            }
        };
        if face.seg_ie_polys.is_empty() && face.xseg_mask.is_none() {
            continue;
        }
        let name = file.display();
        let Some(to_face) = face.image_to_face_mat else {
            out.unmatched
                .push(format!("{name}: no image_to_face_mat to place its labels"));
            continue;
        };
        let Some(to_frame) = to_face.inverse() else {
            out.unmatched
                .push(format!("{name}: image_to_face_mat is singular"));
            continue;
        };
        let landmarks = match (&face.source_landmarks, &face.landmarks) {
            (Some(lm), _) if lm.len() == 68 => lm.clone(),
            (_, Some(lm)) if lm.len() == 68 => lm.iter().map(|p| to_frame.apply(*p)).collect(),
            _ => {
                out.unmatched
                    .push(format!("{name}: no 68 landmarks to match"));
                continue;
            }
        };
        let Some(source) = face.source_filename.as_deref() else {
            out.unmatched.push(format!("{name}: no source_filename"));
            continue;
        };
        let stem = Path::new(source)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let frame = store
            .frames
            .iter()
            .find(|(_, e)| Path::new(&e.name).file_stem().is_some_and(|s| *s == *stem))
            .map(|(i, _)| *i)
            .or_else(|| {
                stem.parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|i| store.frames.contains_key(i))
            });
        let Some(entry) = frame.and_then(|i| store.frames.get_mut(&i)) else {
            out.unmatched.push(format!(
                "{name}: no frame {source} in {}",
                store_path.display()
            ));
            continue;
        };
        let iod = inter_ocular(&landmarks);
        let best = entry
            .faces
            .iter_mut()
            .map(|f| {
                let ours = f.face.landmarks68();
                let d = ours
                    .iter()
                    .zip(&landmarks)
                    .map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1]))
                    .sum::<f64>()
                    / 68.0;
                (d / iod, f)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((distance, target)) = best.filter(|(d, _)| *d <= MATCH_TOLERANCE) else {
            out.unmatched.push(format!(
                "{name}: no face in frame {source} has its landmarks (within {MATCH_TOLERANCE} of the eye distance)"
            ));
            continue;
        };
        tracing::debug!("{name} → {source}, landmark distance {distance:.3} IOD");
        if !face.seg_ie_polys.is_empty() {
            target.labels = face
                .seg_ie_polys
                .iter()
                .map(|p| crate::masks::xseg::LabelPolygon {
                    include: p.include,
                    points: p.points.iter().map(|q| to_frame.apply(*q)).collect(),
                })
                .collect();
            out.labelled += 1;
        }
        if let Some(bytes) = &face.xseg_mask {
            match stored_xseg(bytes, &to_face) {
                Ok(mask) => {
                    target.masks.insert("xseg".into(), mask);
                    out.xseg_masks += 1;
                }
                Err(e) => out.errors.push(format!("{name}: xseg_mask: {e}")),
            }
        }
    }
    if out.labelled + out.xseg_masks > 0 {
        store.save(&store_path).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// DFL's stored XSeg mask (an encoded image in aligned-face pixels) as a stored mask.
fn stored_xseg(bytes: &[u8], frame_to_face: &Affine) -> Result<StoredMask, String> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| e.to_string())?
        .to_luma32f();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w != h || w == 0 {
        return Err(format!("a {w}×{h} mask is not square"));
    }
    let plane = Plane {
        width: w,
        height: h,
        data: img.into_raw(),
    }
    .resized(STORED_SIZE as usize);
    let k = STORED_SIZE as f64 / w as f64;
    let matrix = Affine([[k, 0.0, 0.0], [0.0, k, 0.0]]).then_after(frame_to_face);
    Ok(StoredMask::new(&plane, matrix))
}
