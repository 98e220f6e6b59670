//! Face extraction: a video or an image folder → an alignments store plus aligned face PNGs,
//! each PNG carrying its metadata (source, frame, face index, landmarks, matrices).

pub mod pipeline;

mod face_output;
mod models;
pub use face_output::{FaceOutput, write_aligned_face};
pub use models::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use self::pipeline::{Extractor, ModelFiles, StageTimings};
use crate::atomic::remove_stale_temps;
use crate::faceset::face::{ExtractSettings, Face};
use crate::faceset::store::{Alignments, FrameEntry, SourceInfo, StoredFace};
use crate::faceset::{ALIGNMENTS_FILE, read_face_meta};
use crate::geometry::Centering;
use crate::media::{self, MediaError, RgbFrame};
use crate::sampling::{Pyramid, load_image};
use crate::track;

/// What to extract and how.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// Video file or image folder.
    pub input: PathBuf,
    /// Faceset folder (created).
    pub output: PathBuf,
    /// Aligned face size in pixels.
    pub size: u32,
    /// Aligned face centering / face type.
    pub centering: Centering,
    /// Keep one frame in N.
    pub every_nth: u32,
    /// Detector, landmark and filter settings.
    pub settings: ExtractSettings,
    /// Temporal landmark smoothing of videos (None: off).
    pub smoothing: Option<track::Smoothing>,
}

/// Extraction failed as a whole (a bad frame in a folder is only logged).
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The source could not be read.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Models could not be loaded or run.
    #[error(transparent)]
    Model(#[from] faceswap_models::OnnxRuntimeError),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] crate::faceset::store::StoreError),
    /// Output could not be written.
    #[error("cannot write {path}: {source} (is the disk full?)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The input is neither a video nor a folder of images.
    #[error("{0}")]
    Input(String),
    /// Stopped on request.
    #[error("stopped")]
    Stopped,
}

/// What an extraction did.
#[derive(Debug, Clone, Default)]
pub struct ExtractSummary {
    /// Frames processed in this run.
    pub frames: u64,
    /// Frames already in the store from an earlier run.
    pub resumed_frames: u64,
    /// Faces accepted in this run.
    pub faces: u64,
    /// Faces rejected (kept aside) in this run.
    pub rejected: u64,
    /// Frames with no face.
    pub empty_frames: u64,
    /// Image files that could not be read.
    pub unreadable: Vec<String>,
    /// Time per stage.
    pub timings: StageTimings,
    /// Decoding time.
    pub decode: Duration,
    /// Writing faces and the store.
    pub write: Duration,
    /// Whole run.
    pub total: Duration,
    /// Videos: each track (person) over the clip.
    pub tracks: Vec<track::TrackReport>,
}

impl ExtractSummary {
    /// One line per stage, for logs and the CLI.
    pub fn report(&self) -> Vec<String> {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let per = |d: Duration| {
            if self.frames > 0 {
                ms(d) / self.frames as f64
            } else {
                0.0
            }
        };
        let fps = if self.total.as_secs_f64() > 0.0 {
            self.frames as f64 / self.total.as_secs_f64()
        } else {
            0.0
        };
        vec![
            format!(
                "{} frames ({} resumed from an earlier run), {} faces, {} rejected (kept in rejected/), {} frames without a face",
                self.frames, self.resumed_frames, self.faces, self.rejected, self.empty_frames
            ),
            format!(
                "timings per frame: decode {:.1} ms, detect {:.1} ms, landmarks {:.1} ms, align {:.2} ms, write {:.1} ms; {:.1} frames/s overall",
                per(self.decode),
                per(self.timings.detect),
                per(self.timings.landmarks),
                per(self.timings.align),
                per(self.write),
                fps
            ),
        ]
        .into_iter()
        .chain(self.tracks.iter().take(20).map(|t| t.line()))
        .chain((self.tracks.len() > 20).then(|| format!("… {} tracks in all", self.tracks.len())))
        .collect()
    }
}

/// Image files in a folder, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, ExtractError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ExtractError::Input(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A faceset folder holds one size and centering: resuming into a folder of other crops would
/// mix them (and skip the frames already there), so it is refused.
fn refuse_other_crops(req: &ExtractRequest) -> Result<(), ExtractError> {
    let faces = req.output.join("faces");
    let Ok(entries) = std::fs::read_dir(&faces) else {
        return Ok(());
    };
    let first = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "png"));
    let Some(meta) = first.and_then(|p| read_face_meta(&p).ok()) else {
        return Ok(());
    };
    if meta.size != req.size || meta.centering != req.centering {
        return Err(ExtractError::Input(format!(
            "{} holds {} px faces with centering {}, not {} px {}; use a new output folder (or the same --size and --centering to resume)",
            req.output.display(),
            meta.size,
            meta.centering.name(),
            req.size,
            req.centering.name()
        )));
    }
    Ok(())
}

/// One frame's result, handed from a worker to the collector.
struct ProcessedFrame {
    index: u64,
    entry: FrameEntry,
    timings: StageTimings,
    decode: Duration,
    write: Duration,
}

/// Processes frames: one per thread, each with its own models and tracking state.
struct Worker<'a> {
    req: &'a ExtractRequest,
    /// Where its face files go.
    out: FaceOutput,
    extractor: Extractor,
    /// Faces of the last processed video frame, and frames since the detector last ran.
    previous: Vec<Face>,
    since_detect: u32,
    /// Follows video faces: landmark smoothing (when on) and shake.
    smoother: track::Smoother,
}

impl Worker<'_> {
    fn frame(
        &mut self,
        index: u64,
        name: String,
        pts: Option<i64>,
        frame: RgbFrame,
        video: bool,
    ) -> Result<ProcessedFrame, ExtractError> {
        let pyr = Pyramid::new(frame);
        let mut timings = StageTimings::default();
        let faces = if video {
            let previous = std::mem::take(&mut self.previous);
            let faces = self.extractor.process_tracked(
                &pyr,
                &previous,
                &mut self.since_detect,
                &mut timings,
            )?;
            let smoothed = self.smoother.smooth(&faces);
            let shakes = smoothed.iter().map(|s| s.shake.map(|v| v as f32));
            let out: Vec<(Face, Option<f32>)> = if self.req.smoothing.is_some() {
                faces
                    .iter()
                    .zip(&smoothed)
                    .map(|(f, s)| self.extractor.realign(pyr.base(), f, &s.landmarks))
                    .zip(shakes)
                    .collect()
            } else {
                faces.iter().cloned().zip(shakes).collect()
            };
            // Tracking follows the raw landmarks.
            self.previous = faces;
            out
        } else {
            self.extractor
                .process(&pyr, &mut timings)?
                .into_iter()
                .map(|f| (f, None))
                .collect::<Vec<_>>()
        };
        let start = Instant::now();
        let mut stored = Vec::with_capacity(faces.len());
        for (k, (face, shake)) in faces.into_iter().enumerate() {
            let file = write_aligned_face(&self.out, &pyr, index, &name, k as u32, &face)?;
            stored.push(StoredFace {
                file: Some(file),
                shake,
                ..StoredFace::new(face)
            });
        }
        Ok(ProcessedFrame {
            index,
            entry: FrameEntry {
                name,
                pts,
                faces: stored,
            },
            timings,
            decode: Duration::ZERO,
            write: start.elapsed(),
        })
    }
}

/// Gathers workers' frames into the store (saved every 50 frames) and the summary.
struct Collector {
    store: Alignments,
    store_path: PathBuf,
    summary: ExtractSummary,
    since_save: u32,
}

impl Collector {
    fn add(&mut self, p: ProcessedFrame) -> Result<(), ExtractError> {
        let start = Instant::now();
        for f in &p.entry.faces {
            if f.face.rejected.is_some() {
                self.summary.rejected += 1;
            } else {
                self.summary.faces += 1;
            }
        }
        if p.entry.faces.is_empty() {
            self.summary.empty_frames += 1;
        }
        self.summary.timings.add(&p.timings);
        self.summary.decode += p.decode;
        self.summary.write += p.write;
        self.store.frames.insert(p.index, p.entry);
        self.summary.frames += 1;
        self.since_save += 1;
        if self.since_save >= 50 {
            self.store.save(&self.store_path)?;
            self.since_save = 0;
        }
        self.summary.write += start.elapsed();
        Ok(())
    }
}

/// Video workers to use: one per core (at most 4), fewer for short clips, one when the frame
/// count is unknown (contiguous ranges need it).
fn video_workers(frames: Option<u64>) -> usize {
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    match frames {
        Some(n) => cores.min((n / 60).max(1) as usize),
        None => 1,
    }
}

/// Runs an extraction. `progress(done, total)` is called per frame and returns false to stop
/// (the store is saved first, so a later run resumes where this one stopped).
pub fn run_extraction(
    req: &ExtractRequest,
    models: &ModelFiles,
    mut progress: impl FnMut(u64, Option<u64>) -> bool,
) -> Result<ExtractSummary, ExtractError> {
    let started = Instant::now();
    let is_dir = req.input.is_dir();
    if !is_dir && !req.input.is_file() {
        return Err(ExtractError::Input(format!(
            "{} is neither a video file nor a folder of images",
            req.input.display()
        )));
    }
    // Loaded before anything is written: a bad model fails the run with the output untouched.
    let mut first_extractor = Some(Extractor::load(models, req.settings.clone())?);
    for sub in ["faces", "rejected"] {
        let dir = req.output.join(sub);
        std::fs::create_dir_all(&dir).map_err(|source| ExtractError::Write {
            path: dir.clone(),
            source,
        })?;
        let _ = remove_stale_temps(&dir);
    }
    refuse_other_crops(req)?;
    let store_path = req.output.join(ALIGNMENTS_FILE);
    let source_path = req.input.display().to_string();
    let previous = if store_path.exists() {
        let s = Alignments::load(&store_path)?;
        (s.source.path == source_path
            && s.settings == req.settings
            && (is_dir || s.smoothing == req.smoothing))
            .then_some(s)
    } else {
        None
    };
    let out = FaceOutput::new(&req.input, &req.output, req.size, req.centering);
    let (mut info, files, total) = describe_source(&req.input)?;
    info.path = source_path;
    let nth = req.every_nth.max(1) as u64;
    let frame_count = if is_dir { None } else { total };
    let total = total.map(|t| t.div_ceil(nth));
    let fps = info.fps.unwrap_or(25.0) / nth as f64;
    let store = previous.unwrap_or(Alignments {
        source: info,
        settings: req.settings.clone(),
        frames: BTreeMap::new(),
        smoothing: if is_dir { None } else { req.smoothing },
    });
    let mut col = Collector {
        store,
        store_path: store_path.clone(),
        summary: ExtractSummary::default(),
        since_save: 0,
    };
    col.summary.resumed_frames = col.store.frames.len() as u64;
    let already: std::collections::HashSet<u64> = col.store.frames.keys().copied().collect();
    let mut done = col.summary.resumed_frames;
    let mut stopped = false;
    let mut failure = None;
    if is_dir {
        let extractor = match first_extractor.take() {
            Some(e) => e,
            None => Extractor::load(models, req.settings.clone())?,
        };
        let mut worker = Worker {
            req,
            out: out.clone(),
            extractor,
            previous: Vec::new(),
            since_detect: 0,
            smoother: track::Smoother::new(None, 25.0),
        };
        for (i, path) in files.iter().enumerate() {
            let i = i as u64;
            if !i.is_multiple_of(nth) || already.contains(&i) {
                continue;
            }
            let t = Instant::now();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match load_image(path) {
                Ok(img) => {
                    let decode = t.elapsed();
                    let mut p = worker.frame(i, name, None, img, false)?;
                    p.decode = decode;
                    col.add(p)?;
                }
                Err(e) => {
                    tracing::warn!("cannot read image {}: {e}; skipped", path.display());
                    col.summary
                        .unreadable
                        .push(format!("{}: {e}", path.display()));
                }
            }
            done += 1;
            if !progress(done, total) {
                stopped = true;
                break;
            }
        }
    } else {
        // Contiguous ranges, one per worker, so each can follow faces from frame to frame.
        let workers = video_workers(frame_count);
        let per = frame_count.map_or(u64::MAX, |n| n.div_ceil(workers as u64));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<ProcessedFrame, ExtractError>>(16);
        std::thread::scope(|scope| {
            for w in 0..workers as u64 {
                let preloaded = if w == 0 { first_extractor.take() } else { None };
                let tx = tx.clone();
                let (stop, already, out) = (&stop, &already, &out);
                let start = w * per;
                let end = if w + 1 == workers as u64 {
                    u64::MAX
                } else {
                    start + per
                };
                scope.spawn(move || {
                    let result = (|| -> Result<(), ExtractError> {
                        let extractor = match preloaded {
                            Some(e) => e,
                            None => Extractor::load(models, req.settings.clone())?,
                        };
                        let mut worker = Worker {
                            req,
                            out: out.clone(),
                            extractor,
                            previous: Vec::new(),
                            since_detect: 0,
                            smoother: track::Smoother::new(req.smoothing, fps),
                        };
                        // Decoding starts near the range's first frame still to do, not at 0.
                        let first = (start..end)
                            .take_while(|i| frame_count.is_none_or(|n| *i < n))
                            .find(|i| i.is_multiple_of(nth) && !already.contains(i));
                        let first = match first {
                            Some(i) => i,
                            // A resumed range with nothing left (the last range stays open:
                            // the container's frame count may fall short).
                            None if end != u64::MAX => return Ok(()),
                            None => start,
                        };
                        let mut t = Instant::now();
                        media::decode_video_from::<ExtractError>(
                            &req.input,
                            first,
                            |i| {
                                (start..end).contains(&i)
                                    && i.is_multiple_of(nth)
                                    && !already.contains(&i)
                            },
                            |i, pts, frame| {
                                let decode = t.elapsed();
                                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                    return Ok(false);
                                }
                                let mut p =
                                    worker.frame(i, format!("frame_{i:06}"), pts, frame, true)?;
                                p.decode = decode;
                                t = Instant::now();
                                Ok(tx.send(Ok(p)).is_ok() && i + 1 < end)
                            },
                        )?;
                        Ok(())
                    })();
                    if let Err(e) = result {
                        let _ = tx.send(Err(e));
                    }
                });
            }
            drop(tx);
            for msg in rx {
                match msg.and_then(|p| col.add(p)) {
                    Ok(()) => {
                        done += 1;
                        if !stopped && !progress(done, total) {
                            stopped = true;
                            stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        failure.get_or_insert(e);
                    }
                }
            }
        });
    }
    let t = Instant::now();
    if !is_dir && failure.is_none() && !stopped {
        // The whole clip is in: link each person's faces into tracks across worker ranges.
        col.summary.tracks = track::link_tracks(&mut col.store, &track::Linking::default());
    }
    col.store.save(&store_path)?;
    col.summary.write += t.elapsed();
    col.summary.total = started.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    if stopped {
        return Err(ExtractError::Stopped);
    }
    Ok(col.summary)
}

/// What a source is: its size and rate, and the frame indices of its images (a folder's files
/// in name order) — the numbering extraction uses.
/// Also its frame count (a folder's images; a video's from its container, None when unknown).
pub fn describe_source(
    source: &Path,
) -> Result<(SourceInfo, Vec<PathBuf>, Option<u64>), ExtractError> {
    if source.is_dir() {
        let files = image_files(source)?;
        let first = files.first().ok_or_else(|| {
            ExtractError::Input(format!("{} holds no .jpg or .png images", source.display()))
        })?;
        let img = load_image(first)
            .map_err(|e| ExtractError::Input(format!("{}: {e}", first.display())))?;
        let info = SourceInfo {
            path: source.display().to_string(),
            width: img.width,
            height: img.height,
            fps: None,
        };
        let count = Some(files.len() as u64);
        Ok((info, files, count))
    } else {
        let v = media::probe(source)?;
        let info = SourceInfo {
            path: source.display().to_string(),
            width: v.width,
            height: v.height,
            fps: Some(v.fps),
        };
        Ok((info, Vec::new(), v.frames))
    }
}

/// Calls `f` with each wanted frame of a source (a video, or a folder's images in name order),
/// in order; the first error stops the walk and is returned.
pub fn visit_frames(
    source: &Path,
    wanted: &std::collections::HashSet<u64>,
    mut f: impl FnMut(u64, RgbFrame) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    if source.is_dir() {
        for (i, path) in image_files(source)?.iter().enumerate() {
            if wanted.contains(&(i as u64)) {
                let img = load_image(path)
                    .map_err(|e| ExtractError::Input(format!("{}: {e}", path.display())))?;
                f(i as u64, img)?;
            }
        }
    } else {
        let (Some(&first), Some(&last)) = (wanted.iter().min(), wanted.iter().max()) else {
            return Ok(());
        };
        media::decode_video_from::<ExtractError>(
            source,
            first,
            |i| wanted.contains(&i),
            |i, _, frame| f(i, frame).map(|()| i < last),
        )?;
    }
    Ok(())
}

/// Writes the aligned face files of a faceset's faces from their source frames (faceswap's
/// "alignments extract"): for stores imported from faceswap or DFL, or to export at another
/// size or centering. Each face's `file` is updated and the store saved once at the end.
/// Returns how many files were written.
pub fn export_faces(
    faceset: &Path,
    source: &Path,
    size: u32,
    centering: Centering,
) -> Result<usize, ExtractError> {
    let store_path = faceset.join(ALIGNMENTS_FILE);
    let mut store = Alignments::load(&store_path)?;
    let out = FaceOutput::new(source, faceset, size, centering);
    let wanted = store.frames_with_faces();
    let mut written = 0;
    visit_frames(source, &wanted, |index, frame| {
        let Some(entry) = store.frames.get_mut(&index) else {
            return Ok(());
        };
        let pyr = Pyramid::new(frame);
        for (k, f) in entry.faces.iter_mut().enumerate() {
            f.file = Some(write_aligned_face(
                &out,
                &pyr,
                index,
                &entry.name,
                k as u32,
                &f.face,
            )?);
            written += 1;
        }
        Ok(())
    })?;
    store.save(&store_path)?;
    Ok(written)
}

/// The daemon job for [`faceswap_protocol::ExtractJob`].
pub fn run_job(
    job: &faceswap_protocol::ExtractJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let faceswap_protocol::ExtractJob {
        input,
        output_dir,
        size,
        centering,
        every_nth,
        second_pass,
        refeed,
        smoothing,
        max_faces,
    } = job;
    let cfg = ctx.runtime().config().map_err(JobError::Failed)?;
    let models = configured_models(ctx.runtime().dirs(), &cfg.extract)
        .map_err(|e| JobError::Failed(e.to_string()))?;
    if models.s3fd.is_some() || models.fan.is_some() {
        ctx.log(format!(
            "using configured models: detector {}, landmarker {}",
            models
                .s3fd
                .as_ref()
                .map_or("BlazeFace".into(), |p| p.display().to_string()),
            models
                .fan
                .as_ref()
                .map_or("FaceMesh".into(), |p| p.display().to_string())
        ));
    }
    let req = ExtractRequest {
        input: PathBuf::from(input),
        output: PathBuf::from(output_dir),
        size: *size,
        centering: *centering,
        every_nth: *every_nth,
        settings: ExtractSettings {
            second_pass: *second_pass,
            refeed: *refeed,
            max_faces: *max_faces,
            ..ExtractSettings::default()
        },
        smoothing: smoothing.then(track::Smoothing::default),
    };
    ctx.log(format!(
        "extracting faces from {input} into {output_dir} ({size} px, {centering})"
    ));
    let result = run_extraction(&req, &models, |done, total| {
        ctx.progress(done, total, "frames");
        !ctx.should_stop()
    });
    match result {
        Ok(summary) => {
            for line in summary.report() {
                ctx.log(line);
            }
            for bad in summary.unreadable.iter().take(5) {
                ctx.log(format!("skipped unreadable image {bad}"));
            }
            Ok(())
        }
        Err(ExtractError::Stopped) => Err(JobError::Stopped),
        Err(e) => Err(JobError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faceset::{FaceMeta, encode_face_png};
    use crate::geometry::Affine;

    #[test]
    fn resuming_into_a_faceset_of_other_crops_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let faces = root.path().join("faces");
        std::fs::create_dir_all(&faces).unwrap();
        let crop = RgbFrame {
            width: 8,
            height: 8,
            data: vec![0; 8 * 8 * 3],
        };
        let meta = FaceMeta {
            source: "x".into(),
            frame: 0,
            frame_name: "x".into(),
            face_index: 0,
            landmarks: vec![[0.0; 2]; 68],
            legacy: Affine::IDENTITY,
            crop: Affine::IDENTITY,
            size: 64,
            centering: Centering::DflFull,
            rejected: None,
        };
        std::fs::write(faces.join("a.png"), encode_face_png(&crop, &meta).unwrap()).unwrap();
        let req = |size, centering| ExtractRequest {
            input: root.path().join("in"),
            output: root.path().to_path_buf(),
            size,
            centering,
            every_nth: 1,
            settings: ExtractSettings::default(),
            smoothing: None,
        };
        assert!(refuse_other_crops(&req(64, Centering::DflFull)).is_ok());
        let e = refuse_other_crops(&req(128, Centering::DflFull))
            .unwrap_err()
            .to_string();
        assert!(e.contains("new output folder"), "{e}");
        assert!(refuse_other_crops(&req(64, Centering::Legacy)).is_err());
    }
}
