//! Bringing work done in DeepFaceLab into a Faceswap++ faceset: XSeg editor labels
//! (`seg_ie_polys`) and DFL's stored XSeg masks, attached to the matching faces.

pub mod dfl;
pub mod fsa;

use std::path::{Path, PathBuf};

use crate::faceset::ALIGNMENTS_FILE;
use crate::faceset::store::Alignments;
use crate::geometry::Affine;
use crate::geometry::inter_ocular;
use crate::masks::plane::Plane;
use crate::masks::{STORED_SIZE, StoredMask};

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
    let (store_path, mut store) = crate::faceset::load_store(faceset)?;
    let files = dfl_files(dfl_dir)?;
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
        let dfl::Placement {
            to_face,
            to_frame,
            landmarks,
            source,
        } = match face.placement() {
            Ok(p) => p,
            Err(e) => {
                out.unmatched.push(format!("{name}: {e}"));
                continue;
            }
        };
        let source = source.as_str();
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
            target.labels = in_frame(&face.seg_ie_polys, &to_frame);
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

/// The DFL aligned face files (.jpg) of a folder, in name order.
fn dfl_files(dfl_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dfl_dir)
        .map_err(|e| format!("cannot read {}: {e}", dfl_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("jpg") || x.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// DFL's labels (aligned-face pixels) in frame pixels.
fn in_frame(
    polys: &[crate::masks::xseg::LabelPolygon],
    to_frame: &Affine,
) -> Vec<crate::masks::xseg::LabelPolygon> {
    polys
        .iter()
        .map(|p| crate::masks::xseg::LabelPolygon {
            include: p.include,
            points: p.points.iter().map(|q| to_frame.apply(*q)).collect(),
        })
        .collect()
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

/// What importing faces into a new faceset did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacesetImport {
    /// Frames with at least one face.
    pub frames: usize,
    /// Faces imported.
    pub faces: usize,
    /// Aligned face files written.
    pub files: usize,
    /// Faces with XSeg labels.
    pub labelled: usize,
    /// Tracks (videos).
    pub tracks: usize,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

impl FacesetImport {
    /// The summary line.
    pub fn summary(&self) -> String {
        format!(
            "imported {} faces in {} frames ({} face files, {} labelled, {} tracks); {} skipped",
            self.faces,
            self.frames,
            self.files,
            self.labelled,
            self.tracks,
            self.skipped.len()
        )
    }
}

/// The daemon job for [`faceswap_protocol::ImportJob`]: what was skipped, then the summary,
/// in its log.
pub fn run_job(
    job: &faceswap_protocol::ImportJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use faceswap_protocol::ImportSource;
    let out = Path::new(&job.out);
    ctx.progress(0, None, "importing");
    let r = match &job.source {
        ImportSource::Fsa {
            alignments,
            source,
            size,
            centering,
        } => import_fsa(
            Path::new(alignments),
            Path::new(source),
            out,
            *size,
            *centering,
        ),
        ImportSource::Dfl { aligned } => import_dfl_faceset(Path::new(aligned), out),
    }
    .map_err(crate::jobs::JobError::Failed)?;
    for line in &r.skipped {
        ctx.log(format!("skipped: {line}"));
    }
    ctx.log(r.summary());
    Ok(())
}

/// The alignments store of a new faceset folder: an error if one is there already, so an
/// import never replaces the user's work.
fn new_store_path(faceset: &Path) -> Result<PathBuf, String> {
    let path = faceset.join(ALIGNMENTS_FILE);
    if path.exists() {
        return Err(format!(
            "{} already exists; import into a new faceset folder",
            path.display()
        ));
    }
    std::fs::create_dir_all(faceset)
        .map_err(|e| format!("cannot create {}: {e}", faceset.display()))?;
    Ok(path)
}

/// Imports a faceswap alignments file (`.fsa`) for `source` (the video or image folder it was
/// made from) into a new faceset: the faces, their landmarks and masks, track ids for videos,
/// and aligned face files at `size`/`centering` cut from the source frames.
pub fn import_fsa(
    fsa: &Path,
    source: &Path,
    faceset: &Path,
    size: u32,
    centering: crate::geometry::Centering,
) -> Result<FacesetImport, String> {
    let file = fsa::read_fsa(fsa)?;
    let store_path = new_store_path(faceset)?;
    let (info, folder_files, _) =
        crate::extract::describe_source(source).map_err(|e| e.to_string())?;
    let (mut store, skipped) = fsa::store_from_fsa(&file, info, &folder_files);
    let tracks = if source.is_dir() {
        0
    } else {
        crate::track::link_tracks(&mut store, &Default::default()).len()
    };
    store.save(&store_path).map_err(|e| e.to_string())?;
    let files = crate::extract::export_faces(faceset, source, size, centering)
        .map_err(|e| e.to_string())?;
    Ok(FacesetImport {
        frames: store
            .frames
            .values()
            .filter(|e| !e.faces.is_empty())
            .count(),
        faces: store.frames.values().map(|e| e.faces.len()).sum(),
        files,
        labelled: 0,
        tracks,
        skipped,
    })
}

/// Imports a folder of DeepFaceLab aligned faces into a new faceset, without the source
/// frames: each DFL face becomes an aligned face file (its pixels and DFL's own crop matrix),
/// its frame landmarks, XSeg labels and stored XSeg mask go into the store. Frames are
/// numbered by DFL's frame file names (`00001.png` is frame 0) or, for other names, in name
/// order. DFL's half and mid-full face types have no Faceswap++ centering and are refused.
pub fn import_dfl_faceset(dfl_dir: &Path, faceset: &Path) -> Result<FacesetImport, String> {
    use crate::faceset::store::{FrameEntry, SourceInfo, StoredFace};
    use crate::geometry::Centering;
    let files = dfl_files(dfl_dir)?;
    let mut out = FacesetImport::default();
    let mut read = Vec::new();
    for file in files {
        match dfl::read_dfl_jpg(&file) {
            Ok(face) => read.push((file, face)),
            Err(e) => out.skipped.push(e.to_string()),
        }
    }
    // Frame numbers: DFL's numbered frame files, else the order of the frame names.
    let mut names: Vec<String> = read
        .iter()
        .filter_map(|(_, f)| f.source_filename.clone())
        .collect();
    names.sort();
    names.dedup();
    let numbered = names.iter().all(|n| {
        Path::new(n).file_stem().is_some_and(|s| {
            !s.is_empty() && s.to_string_lossy().chars().all(|c| c.is_ascii_digit())
        })
    });
    let index_of = |name: &str| -> u64 {
        if numbered {
            let stem = Path::new(name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            stem.and_then(|s| s.parse::<u64>().ok())
                .map_or(0, |n| n.saturating_sub(1))
        } else {
            names.iter().position(|n| n == name).unwrap_or(0) as u64
        }
    };
    let store_path = new_store_path(faceset)?;
    let mut store = Alignments::new(SourceInfo {
        path: dfl_dir.display().to_string(),
        width: 0,
        height: 0,
        fps: None,
    });
    let mut centering_seen: Option<Centering> = None;
    for (file, face) in read {
        let name = file.display();
        let centering = match face.face_type.as_deref() {
            Some("full_face") | None => Centering::DflFull,
            Some("whole_face") => Centering::DflWholeFace,
            Some("head") => Centering::DflHead,
            Some(other) => {
                out.skipped.push(format!(
                    "{name}: DFL face type {other} has no Faceswap++ centering (use f, wf or head faces)"
                ));
                continue;
            }
        };
        if let Some(c) = centering_seen.filter(|c| *c != centering) {
            out.skipped.push(format!(
                "{name}: a {} face in a faceset of {} faces",
                centering.name(),
                c.name()
            ));
            continue;
        }
        let dfl::Placement {
            to_face,
            to_frame,
            landmarks,
            source,
        } = match face.placement() {
            Ok(p) => p,
            Err(e) => {
                out.skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let img = match image::open(&file) {
            Ok(img) => img.to_rgb8(),
            Err(e) => {
                out.skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        if img.width() != img.height() {
            out.skipped
                .push(format!("{name}: not a square aligned face"));
            continue;
        }
        centering_seen = Some(centering);
        let mut lm = [[0.0; 2]; 68];
        lm.copy_from_slice(&landmarks);
        let bbox = face.source_rect.unwrap_or_else(|| {
            let xs = lm.iter().map(|p| p[0]);
            let ys = lm.iter().map(|p| p[1]);
            [
                xs.clone().fold(f64::MAX, f64::min),
                ys.clone().fold(f64::MAX, f64::min),
                xs.fold(f64::MIN, f64::max),
                ys.fold(f64::MIN, f64::max),
            ]
        });
        let index = index_of(&source);
        let entry = store.frames.entry(index).or_insert_with(|| FrameEntry {
            name: source.clone(),
            pts: None,
            faces: Vec::new(),
        });
        let k = entry.faces.len() as u32;
        let stored_face = crate::faceset::face::Face::from_landmarks(bbox, &lm);
        let meta = crate::faceset::FaceMeta {
            source: dfl_dir.display().to_string(),
            frame: index,
            frame_name: source.clone(),
            face_index: k,
            landmarks: stored_face.landmarks.clone(),
            legacy: stored_face.legacy,
            crop: to_face,
            size: img.width(),
            centering,
            rejected: None,
        };
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().replace(' ', "_"))
            .unwrap_or_default();
        let rel = format!("faces/{stem}.png");
        let path = faceset.join(&rel);
        let frame = crate::media::RgbFrame {
            width: img.width(),
            height: img.height(),
            data: img.into_raw(),
        };
        let bytes = crate::faceset::encode_face_png(&frame, &meta)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::create_dir_all(faceset.join("faces"))
            .map_err(|e| format!("cannot create {}: {e}", faceset.display()))?;
        crate::atomic::write_atomic(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        out.files += 1;
        let labels = in_frame(&face.seg_ie_polys, &to_frame);
        out.labelled += usize::from(!labels.is_empty());
        let mut masks = std::collections::BTreeMap::new();
        if let Some(bytes) = &face.xseg_mask {
            match stored_xseg(bytes, &to_face) {
                Ok(m) => {
                    masks.insert("xseg".to_string(), m);
                }
                Err(e) => out.skipped.push(format!("{name}: xseg_mask: {e}")),
            }
        }
        entry.faces.push(StoredFace {
            file: Some(rel),
            masks,
            labels,
            ..StoredFace::new(stored_face)
        });
        out.faces += 1;
    }
    if out.faces == 0 {
        return Err(format!(
            "no DeepFaceLab faces could be imported from {}{}",
            dfl_dir.display(),
            out.skipped
                .first()
                .map_or(String::new(), |s| format!(" (first problem: {s})"))
        ));
    }
    out.frames = store.frames.len();
    store.save(&store_path).map_err(|e| e.to_string())?;
    Ok(out)
}
