//! Editor projects: training material collected from the timeline by the OFX trainer effect,
//! kept per effect instance under `<data>/projects/<instance id>/` (faces for sides A and B as
//! extract writes them, the model, the newest job), and the training job started from there.

use std::path::{Path, PathBuf};

use faceswap_protocol::{JobId, JobSpec, ProjectReport, Side, TrainSettings};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::extract::pipeline::{Extractor, StageTimings};
use crate::faceset::{FaceMeta, encode_face_png};
use crate::geometry::{Centering, centered_matrix, crop_matrix};
use crate::jobs::JobManager;
use crate::media::RgbFrame;
use crate::sampling::Pyramid;
use faceswap_protocol::TrainJob;

/// Aligned faces collected from the editor: DFL whole-face-like full crops at this size.
pub const COLLECT_SIZE: u32 = 128;
/// Their centering (training reads it; merge crops the same way).
pub const COLLECT_CENTERING: Centering = Centering::DflFull;

const PROJECT_FILE: &str = "project.toml";

/// What a project folder records.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProjectFile {
    last_job: Option<JobId>,
}

/// The folder of project `name` under `data`; names come from the editor, so anything but
/// letters, digits, `-` and `_` (a path, `..`) is refused.
pub fn project_dir(data: &Path, name: &str) -> Result<PathBuf, String> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "project name {name:?} is not allowed: use letters, digits, '-' and '_'"
        ));
    }
    Ok(data.join("projects").join(name))
}

/// The model folder of project `name` under `data` (what its training jobs write).
pub fn model_dir(data: &Path, name: &str) -> Result<PathBuf, String> {
    Ok(project_dir(data, name)?.join(MODEL_DIR))
}

/// A project's model folder name.
const MODEL_DIR: &str = "model";

fn side_dir(project: &Path, side: Side) -> PathBuf {
    project.join(match side {
        Side::A => "faces_a",
        Side::B => "faces_b",
    })
}

/// Finds the faces in `frame` and writes them, aligned, into the project's side; collecting a
/// frame again replaces its faces. Returns how many were written.
pub fn collect(
    extractor: &mut Extractor,
    project: &Path,
    side: Side,
    frame_number: u64,
    frame: RgbFrame,
) -> Result<u32, String> {
    let dir = side_dir(project, side).join("faces");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let pyramid = Pyramid::new(frame);
    let faces = extractor
        .process(&pyramid, &mut StageTimings::default())
        .map_err(|e| e.to_string())?;
    let mut written = 0;
    for (i, face) in faces.iter().enumerate() {
        if face.rejected.is_some() || face.landmarks.len() != 68 {
            continue;
        }
        let lm = face.landmarks68();
        let m = centered_matrix(&face.legacy, &lm, COLLECT_CENTERING);
        let crop = crop_matrix(&m, COLLECT_SIZE, COLLECT_CENTERING);
        let Some(inv) = crop.inverse() else {
            continue;
        };
        let img = pyramid.warp_rgb(&inv, COLLECT_SIZE as usize);
        let name = format!("frame_{frame_number:06}");
        let meta = FaceMeta {
            source: "editor".into(),
            frame: frame_number,
            frame_name: name.clone(),
            face_index: i as u32,
            landmarks: face.landmarks.clone(),
            legacy: face.legacy,
            crop,
            size: COLLECT_SIZE,
            centering: COLLECT_CENTERING,
            rejected: None,
        };
        let png = encode_face_png(&img, &meta)?;
        let path = dir.join(format!("{name}_{i}.png"));
        crate::atomic::write_atomic(&path, &png)
            .map_err(|e| format!("cannot write {}: {e} (is the disk full?)", path.display()))?;
        written += 1;
    }
    Ok(written)
}

fn count_faces(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("faces")).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
            .count() as u64
    })
}

/// The project's record; none yet is the default. A damaged one is set aside (never deleted)
/// and reported, so a lost link to the training job is never silent.
fn read_file(project: &Path) -> Result<ProjectFile, String> {
    let path = project.join(PROJECT_FILE);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProjectFile::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let why = match text
        .and_then(|t| toml::from_str(&t).map_err(|e| crate::toml_error::one_line(&t, &e)))
    {
        Ok(file) => return Ok(file),
        Err(why) => why,
    };
    let kept = match crate::atomic::set_aside(&path) {
        Ok(aside) => format!("it was set aside as {}", aside.display()),
        Err(e) => format!("it could not be set aside ({e}); move it away by hand"),
    };
    Err(format!(
        "the project record {} is damaged ({}); {kept}. The collected faces and the model are \
         untouched; press Train again to link a new training job (the daemon's job list keeps \
         the earlier ones)",
        path.display(),
        why.trim()
    ))
}

/// Queues training on the project's collected faces; the model lives in the project folder.
pub fn train(jobs: &JobManager, project: &Path, settings: TrainSettings) -> Result<JobId, String> {
    read_file(project)?;
    for side in [Side::A, Side::B] {
        if count_faces(&side_dir(project, side)) == 0 {
            return Err(format!(
                "no faces collected for side {side:?} yet: render frames with the trainer in Collect {side:?} mode first"
            ));
        }
    }
    let model = project.join(MODEL_DIR);
    std::fs::create_dir_all(&model)
        .map_err(|e| format!("cannot create {}: {e}", model.display()))?;
    let spec = JobSpec::Train(TrainJob {
        faceset_a: side_dir(project, Side::A).display().to_string(),
        faceset_b: side_dir(project, Side::B).display().to_string(),
        model_dir: model.display().to_string(),
        settings: Box::new(settings),
    });
    let id = jobs.submit(spec).map_err(|e| e.to_string())?;
    let text = toml::to_string(&ProjectFile { last_job: Some(id) }).map_err(|e| e.to_string())?;
    crate::atomic::write_atomic(&project.join(PROJECT_FILE), text.as_bytes())
        .map_err(|e| format!("cannot record the job in {}: {e}", project.display()))?;
    Ok(id)
}

/// What the project holds now; an error when its record is damaged (set aside by then).
pub fn status(jobs: &JobManager, project: &Path) -> Result<ProjectReport, String> {
    let job = read_file(project)?
        .last_job
        .and_then(|id| jobs.get(id).ok())
        .map(|r| (&r).into());
    let model = project.join(MODEL_DIR);
    Ok(ProjectReport {
        faces_a: count_faces(&side_dir(project, Side::A)),
        faces_b: count_faces(&side_dir(project, Side::B)),
        job,
        checkpoint_step: checkpoint::peek_step(&model.join(checkpoint::CURRENT)),
        model_dir: model.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_cannot_escape_the_projects_folder() {
        let data = Path::new("/data");
        assert_eq!(
            project_dir(data, "18eb-3678_0").unwrap(),
            PathBuf::from("/data/projects/18eb-3678_0")
        );
        for bad in ["", "..", "../x", "a/b", "a b", "x\0"] {
            assert!(project_dir(data, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_damaged_project_record_is_reported_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_file(dir.path()).unwrap().last_job.is_none(),
            "none yet"
        );
        let path = dir.path().join(PROJECT_FILE);
        std::fs::write(&path, "last_job = \"seven\"\n").unwrap();
        let e = read_file(dir.path()).unwrap_err();
        println!("{e}");
        assert!(e.contains("project.toml") && e.contains("damaged"), "{e}");
        assert!(
            e.contains("set aside as") && e.contains("press Train again"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("project.toml.corrupt")).unwrap(),
            "last_job = \"seven\"\n",
            "kept, not deleted"
        );
        assert!(
            read_file(dir.path()).is_ok(),
            "a fresh start after the report"
        );
    }
}
