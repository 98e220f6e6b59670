//! The convert job: every frame of the destination video (or image folder) through the merge,
//! written as a video with the source's audio muxed back, or as PNG / TIFF images. The output
//! is built under a temporary name beside the final one and renamed only when complete, and it
//! carries a provenance tag saying it was face-swapped by Faceswap++.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faceswap_models::ComputeDevice;
use faceswap_protocol::ConvertSettings;
use ffmpeg_next as ffmpeg;

pub use super::error::ConvertError;
use super::output::{FrameSink, ImageSink, VideoSink, encode_tagged_png};
pub use super::output::{draw_label, is_video_path, provenance};
pub use super::predictor::ModelPredictor;
pub use super::settings::merge_settings;
use super::{
    FacePredictor, MergeMode, MergeSettings, Motion, TargetFace, face_centre, merge_frame,
};
use crate::extract::image_files;
use crate::faceset::ALIGNMENTS_FILE;
use crate::faceset::store::{Alignments, FrameEntry};
use crate::masks::plane::MaskMode;
use crate::media::{self, RgbFrame};
use crate::sampling::load_image;

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    /// The destination video or image folder.
    pub input: PathBuf,
    /// Its alignments store (file or faceset folder).
    pub alignments: PathBuf,
    /// The trained model folder.
    pub model_dir: PathBuf,
    /// Video file or image folder to write.
    pub output: PathBuf,
    /// Options.
    pub settings: ConvertSettings,
    /// Where the model runs.
    pub device: ComputeDevice,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ConvertSummary {
    /// Frames written.
    pub frames_written: u64,
    /// Frames with at least one face swapped.
    pub frames_swapped: u64,
    /// Faces swapped.
    pub faces_swapped: u64,
    /// Frames that passed through without a face.
    pub frames_without_face: u64,
    /// The output.
    pub output: PathBuf,
    /// Seconds.
    pub seconds: f64,
    /// The track `--reference` picked, and its similarity.
    pub reference_track: Option<(u32, f64)>,
}

impl ConvertSummary {
    /// Human-readable lines.
    pub fn report(&self) -> Vec<String> {
        vec![
            format!(
                "{} frames written ({} with a swapped face, {} faces; {} without a face passed through) in {:.1} s",
                self.frames_written,
                self.frames_swapped,
                self.faces_swapped,
                self.frames_without_face,
                self.seconds
            ),
            format!("output: {}", self.output.display()),
        ]
        .into_iter()
        .chain(self.reference_track.map(|(id, sim)| {
            format!("the reference face matched track {id} (similarity {sim:.2})")
        }))
        .collect()
    }
}

fn in_ranges(ranges: &[(u64, u64)], i: u64) -> bool {
    ranges.is_empty() || ranges.iter().any(|(a, b)| (*a..=*b).contains(&i))
}

/// The faces to swap in each frame, with their motion (nearest face in the neighbouring
/// frames' entries).
fn targets_by_frame(
    store: &Alignments,
    only: &[u32],
    tracks: &[u32],
    rules: Option<&crate::masks::rules::MaskRules>,
) -> BTreeMap<u64, Vec<TargetFace>> {
    // The accepted faces the user picked (by index and by track), in detection order.
    fn chosen<'a>(
        e: &'a FrameEntry,
        only: &[u32],
        tracks: &[u32],
    ) -> Vec<&'a crate::faceset::store::StoredFace> {
        e.faces
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                f.face.rejected.is_none()
                    && f.face.landmarks.len() == 68
                    && (only.is_empty() || only.contains(&(*i as u32)))
                    && (tracks.is_empty() || f.track.is_some_and(|t| tracks.contains(&t)))
            })
            .map(|(_, f)| f)
            .collect()
    }
    let centres = |e: Option<&FrameEntry>| -> Vec<[f64; 2]> {
        e.map(|e| {
            chosen(e, only, tracks)
                .iter()
                .filter_map(|f| face_centre(&f.face.landmarks68()))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for (&i, e) in &store.frames {
        let prev = centres(
            i.checked_sub(1)
                .and_then(|p| store.frames.get(&p))
                .or(Some(e)),
        );
        let next = centres(store.frames.get(&(i + 1)).or(Some(e)));
        let nearest = |set: &[[f64; 2]], c: [f64; 2]| {
            set.iter()
                .min_by(|a, b| {
                    let da = (a[0] - c[0]).hypot(a[1] - c[1]);
                    let db = (b[0] - c[0]).hypot(b[1] - c[1]);
                    da.total_cmp(&db)
                })
                .copied()
        };
        let list = chosen(e, only, tracks)
            .into_iter()
            .map(|stored| {
                let landmarks = stored.face.landmarks68();
                // The stored mask the rules pick for this frame (the "stored" mask mode).
                let mask = rules
                    .and_then(|r| stored.mask_by_rules(i, r))
                    .map(|(_, m)| m.clone());
                let motion = face_centre(&landmarks)
                    .and_then(|c| Some((nearest(&prev, c)?, nearest(&next, c)?)))
                    .map(|(p, n)| Motion {
                        power: (n[0] - p[0]).hypot(n[1] - p[1]),
                        angle: (n[1] - p[1]).atan2(n[0] - p[0]),
                    })
                    .unwrap_or_default();
                TargetFace {
                    landmarks,
                    motion,
                    mask,
                }
            })
            .collect();
        out.insert(i, list);
    }
    out
}

fn load_alignments(path: &Path) -> Result<(Alignments, PathBuf), ConvertError> {
    let file = if path.is_dir() {
        path.join(ALIGNMENTS_FILE)
    } else {
        path.to_path_buf()
    };
    let store = Alignments::load(&file).map_err(|e| {
        ConvertError::Alignments(format!(
            "{e}; run `faceswapd extract` on the input first and pass its faceset folder"
        ))
    })?;
    Ok((store, file))
}

/// Converts the whole input. `progress(done, total)` is called per frame; returning false
/// stops the run (the partial output is removed).
pub fn run_convert(
    req: &ConvertRequest,
    predictor: &mut dyn FacePredictor,
    mut progress: impl FnMut(u64, Option<u64>) -> bool,
) -> Result<ConvertSummary, ConvertError> {
    let started = std::time::Instant::now();
    let s = &req.settings;
    let merge = merge_settings(s)?;
    let (store, store_file) = load_alignments(&req.alignments)?;
    let rules = match &s.mask_rules {
        Some(text) => {
            Some(crate::masks::rules::MaskRules::parse(text).map_err(ConvertError::Settings)?)
        }
        None => None,
    };
    if merge.mask_mode == MaskMode::Stored && rules.is_none() {
        return Err(ConvertError::Settings(
            "mask mode stored needs --mask-rules, e.g. \"0-100: xseg; fallback: components\""
                .into(),
        ));
    }
    let mut tracks = s.tracks.clone();
    let reference_track = match &s.reference {
        Some(reference) => {
            let folder = store_file.parent().unwrap_or(Path::new("."));
            let (id, similarity) = crate::track::track_for_reference(folder, Path::new(reference))
                .map_err(ConvertError::Settings)?;
            tracks.push(id);
            Some((id, similarity))
        }
        None => None,
    };
    let targets = targets_by_frame(&store, &s.faces, &tracks, rules.as_ref());
    let tag = provenance(&s.project);
    let is_dir = req.input.is_dir();
    if !is_dir && !req.input.is_file() {
        return Err(ConvertError::Input(format!(
            "{} is neither a video file nor a folder of images",
            req.input.display()
        )));
    }
    let video_out = is_video_path(&req.output);
    let mut summary = ConvertSummary {
        output: req.output.clone(),
        reference_track,
        ..ConvertSummary::default()
    };
    let r = predictor.resolution() as u32;
    let frame_count = if is_dir {
        image_files(&req.input).map(|f| f.len() as u64).unwrap_or(0)
    } else {
        media::probe(&req.input)?.frames.unwrap_or(0)
    };
    let preview_at = frame_count / 2;
    let mut preview: Option<(RgbFrame, RgbFrame)> = None;
    // The label goes on every frame written: the whole output is synthetic media.
    let labelled = |mut f: RgbFrame| {
        if let Some(label) = &s.label {
            draw_label(&mut f, label);
        }
        f
    };
    let mut process = |index: u64,
                       name: &str,
                       frame: RgbFrame,
                       summary: &mut ConvertSummary|
     -> Result<Option<RgbFrame>, ConvertError> {
        if !in_ranges(&s.frames, index) {
            return Ok(s.keep_unchanged.then(|| labelled(frame)));
        }
        let list = match targets.get(&index) {
            Some(l) => l.as_slice(),
            None if s.allow_missing_alignments => &[],
            None => {
                return Err(ConvertError::MissingAlignments {
                    index,
                    name: name.to_string(),
                    input: req.input.display().to_string(),
                    alignments: store_file.display().to_string(),
                });
            }
        };
        if list.is_empty() {
            summary.frames_without_face += 1;
            let mut f = frame;
            if merge.mode == MergeMode::RawPredict {
                f = RgbFrame {
                    width: r,
                    height: r,
                    data: vec![0; (r * r * 3) as usize],
                };
            }
            return Ok(Some(labelled(f)));
        }
        let out = labelled(
            merge_frame(&frame, list, predictor, &merge)
                .map_err(|e| ConvertError::Merge(index, e))?,
        );
        summary.frames_swapped += 1;
        summary.faces_swapped += list.len() as u64;
        if s.before_after.is_some() && preview.is_none() && index >= preview_at {
            preview = Some((frame, out.clone()));
        }
        Ok(Some(out))
    };

    if is_dir {
        let files = image_files(&req.input).map_err(|e| ConvertError::Input(e.to_string()))?;
        if files.is_empty() {
            return Err(ConvertError::Input(format!(
                "{} holds no .jpg or .png images",
                req.input.display()
            )));
        }
        let mut sink: Box<dyn FrameSink> = if video_out {
            let first = load_image(&files[0])
                .map_err(|e| ConvertError::Input(format!("{}: {e}", files[0].display())))?;
            let size = if merge.mode == MergeMode::RawPredict {
                (r, r)
            } else {
                (first.width, first.height)
            };
            Box::new(VideoSink::create(
                &req.output,
                size,
                ffmpeg::Rational(25, 1),
                None,
                s,
                &tag,
            )?)
        } else {
            Box::new(ImageSink::create(&req.output, s.image_format, tag.clone())?)
        };
        let total = files.len() as u64;
        for (i, path) in files.iter().enumerate() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(e) = store.frames.get(&(i as u64))
                && e.name != name
            {
                return Err(ConvertError::Alignments(format!(
                    "{} lists frame {i} as {}, but the folder's frame {i} is {name}: the folder changed since extract; extract it again",
                    store_file.display(),
                    e.name
                )));
            }
            let frame = load_image(path)
                .map_err(|e| ConvertError::Input(format!("{}: {e}", path.display())))?;
            if let Some(out) = process(i as u64, &name, frame, &mut summary)? {
                sink.write(i as u64, &name, &out)?;
                summary.frames_written += 1;
            }
            if !progress(i as u64 + 1, Some(total)) {
                return Err(ConvertError::Stopped(i as u64 + 1));
            }
        }
        sink.finish()?;
    } else {
        convert_video(
            req,
            &merge,
            r,
            &tag,
            &mut summary,
            &mut process,
            &mut progress,
        )?;
    }
    if let (Some(path), Some((before, after))) = (&s.before_after, preview) {
        write_before_after(Path::new(path), &before, &after, &tag)?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Source and result side by side (the result scaled to the source's height when sizes
/// differ, as raw-predict's do), as a tagged PNG.
fn write_before_after(
    path: &Path,
    before: &RgbFrame,
    after: &RgbFrame,
    tag: &str,
) -> Result<(), ConvertError> {
    let h = before.height as usize;
    let after = if after.height == before.height {
        after.clone()
    } else {
        let img = image::RgbImage::from_raw(after.width, after.height, after.data.clone())
            .ok_or_else(|| ConvertError::Output {
                path: path.to_path_buf(),
                reason: "bad frame".into(),
            })?;
        let w = (after.width as usize * h / after.height.max(1) as usize).max(1) as u32;
        let img = image::imageops::resize(&img, w, h as u32, image::imageops::FilterType::Triangle);
        RgbFrame {
            width: img.width(),
            height: img.height(),
            data: img.into_raw(),
        }
    };
    let (wb, wa) = (before.width as usize, after.width as usize);
    let mut data = Vec::with_capacity((wb + wa) * h * 3);
    for y in 0..h {
        data.extend_from_slice(&before.data[y * wb * 3..(y + 1) * wb * 3]);
        data.extend_from_slice(&after.data[y * wa * 3..(y + 1) * wa * 3]);
    }
    let both = RgbFrame {
        width: (wb + wa) as u32,
        height: h as u32,
        data,
    };
    let png = encode_tagged_png(&both, tag).map_err(|reason| ConvertError::Output {
        path: path.to_path_buf(),
        reason,
    })?;
    crate::atomic::write_atomic(path, &png).map_err(|e| ConvertError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

type Process<'a> = dyn FnMut(u64, &str, RgbFrame, &mut ConvertSummary) -> Result<Option<RgbFrame>, ConvertError>
    + 'a;

/// One demuxing pass: video packets are decoded, merged and encoded; audio packets are copied.
fn convert_video(
    req: &ConvertRequest,
    merge: &MergeSettings,
    r: u32,
    tag: &str,
    summary: &mut ConvertSummary,
    process: &mut Process,
    progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
) -> Result<(), ConvertError> {
    media::init()?;
    let input = &req.input;
    let unreadable = |e: ffmpeg::Error| {
        ConvertError::Input(format!(
            "cannot read video {}: {e} (is it a video file FFmpeg can decode?)",
            input.display()
        ))
    };
    let info = media::probe(input)?;
    let mut ictx = ffmpeg::format::input(input).map_err(unreadable)?;
    let vstream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| ConvertError::Input(format!("{} has no video stream", input.display())))?;
    let vindex = vstream.index();
    let rate = {
        let r = vstream.avg_frame_rate();
        if r.numerator() > 0 && r.denominator() > 0 {
            r
        } else {
            vstream.rate()
        }
    };
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(vstream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(unreadable)?;
    let audio = ictx.streams().best(ffmpeg::media::Type::Audio);
    let aindex = audio.as_ref().map(|a| a.index());
    let atb = audio.as_ref().map(|a| a.time_base());
    let (w, h) = (decoder.width(), decoder.height());
    let size = if merge.mode == MergeMode::RawPredict {
        (r, r)
    } else {
        (w, h)
    };
    let mut video_sink = if is_video_path(&req.output) {
        Some(VideoSink::create(
            &req.output,
            size,
            rate,
            audio.as_ref(),
            &req.settings,
            tag,
        )?)
    } else {
        None
    };
    let mut image_sink = if video_sink.is_none() {
        Some(ImageSink::create(
            &req.output,
            req.settings.image_format,
            tag.to_string(),
        )?)
    } else {
        None
    };
    let mut scaler = ffmpeg::software::scaling::Context::get(
        decoder.format(),
        w,
        h,
        ffmpeg::format::Pixel::RGB24,
        w,
        h,
        ffmpeg::software::scaling::Flags::BILINEAR,
    )
    .map_err(unreadable)?;
    let mut count = 0u64;
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut rgb = ffmpeg::frame::Video::empty();
    let total = info.frames;
    let mut drain = |decoder: &mut ffmpeg::decoder::Video,
                     video_sink: &mut Option<VideoSink>,
                     image_sink: &mut Option<ImageSink>,
                     summary: &mut ConvertSummary|
     -> Result<(), ConvertError> {
        while decoder.receive_frame(&mut decoded).is_ok() {
            let i = count;
            count += 1;
            scaler.run(&decoded, &mut rgb).map_err(unreadable)?;
            let frame = media::packed_rgb(&rgb);
            let name = format!("frame_{i:06}");
            if let Some(out) = process(i, &name, frame, summary)? {
                if let Some(v) = video_sink.as_mut() {
                    v.write(i, &name, &out)?;
                } else if let Some(s) = image_sink.as_mut() {
                    s.write(i, &name, &out)?;
                }
                summary.frames_written += 1;
            }
            if !progress(i + 1, total) {
                return Err(ConvertError::Stopped(i + 1));
            }
        }
        Ok(())
    };
    for (stream, packet) in ictx.packets() {
        let si = stream.index();
        if si == vindex {
            decoder.send_packet(&packet).map_err(unreadable)?;
            drain(&mut decoder, &mut video_sink, &mut image_sink, summary)?;
        } else if Some(si) == aindex
            && let (Some(v), Some(tb)) = (video_sink.as_mut(), atb)
        {
            v.audio(packet, tb)?;
        }
    }
    decoder.send_eof().map_err(unreadable)?;
    drain(&mut decoder, &mut video_sink, &mut image_sink, summary)?;
    if count == 0 {
        return Err(ConvertError::Input(format!(
            "no frame of {} could be decoded",
            input.display()
        )));
    }
    if let Some(v) = video_sink {
        Box::new(v).finish()?;
    }
    if let Some(s) = image_sink {
        Box::new(s).finish()?;
    }
    Ok(())
}

/// The daemon job for [`faceswap_protocol::ConvertJob`].
pub fn run_job(
    job: &faceswap_protocol::ConvertJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let faceswap_protocol::ConvertJob {
        input,
        alignments,
        model_dir,
        output,
        settings,
    } = job;
    let device = crate::device::job_device(settings.device.as_deref(), ctx)?;
    let req = ConvertRequest {
        input: input.into(),
        alignments: alignments.into(),
        model_dir: model_dir.into(),
        output: output.into(),
        settings: (**settings).clone(),
        device,
    };
    let mut predictor = ModelPredictor::open(&req.model_dir, device)
        .map_err(|e| JobError::Failed(e.to_string()))?;
    if let Some(dir) = &req.settings.xseg_model {
        predictor = predictor
            .with_xseg(Path::new(dir))
            .map_err(|e| JobError::Failed(e.to_string()))?;
    }
    ctx.log(format!(
        "converting {input} with model {model_dir} (step {}, {} px, on {}) into {output}",
        predictor.step,
        predictor.resolution(),
        device
    ));
    match run_convert(&req, &mut predictor, |done, total| {
        ctx.progress(done, total, "frames");
        !ctx.should_stop()
    }) {
        Ok(summary) => {
            for line in summary.report() {
                ctx.log(line);
            }
            Ok(())
        }
        Err(ConvertError::Stopped(n)) => {
            ctx.log(format!(
                "stopped after {n} frames; the partial output was removed"
            ));
            Err(JobError::Stopped)
        }
        Err(e) => Err(JobError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_is_drawn_in_the_top_left_corner_only() {
        let mut f = RgbFrame {
            width: 320,
            height: 180,
            data: vec![128; 320 * 180 * 3],
        };
        draw_label(&mut f, "SYNTHETIC");
        let px = |x: usize, y: usize| &f.data[(y * 320 + x) * 3..(y * 320 + x) * 3 + 3];
        let white = (0..16)
            .flat_map(|y| (0..80).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y) == [255, 255, 255])
            .count();
        assert!(white > 40, "{white} white pixels");
        assert_eq!(px(319, 179), [128, 128, 128]);
        assert_eq!(px(200, 100), [128, 128, 128]);
    }

    #[test]
    fn faces_are_chosen_by_track_and_by_index() {
        use crate::faceset::store::{SourceInfo, StoredFace};
        let face = |x: f64, track: u32| {
            let landmarks: Vec<[f64; 2]> = crate::geometry::MEAN_FACE_51
                .iter()
                .cycle()
                .take(68)
                .map(|p| [x + p[0] * 100.0, 50.0 + p[1] * 100.0])
                .collect();
            let mut lm = [[0.0; 2]; 68];
            lm.copy_from_slice(&landmarks);
            StoredFace {
                track: Some(track),
                ..StoredFace::new(crate::faceset::face::Face::from_landmarks(
                    [x, 50.0, x + 100.0, 150.0],
                    &lm,
                ))
            }
        };
        let mut store = Alignments::new(SourceInfo {
            path: "v.mp4".into(),
            width: 640,
            height: 360,
            fps: Some(25.0),
        });
        store.frames.insert(
            0,
            FrameEntry {
                name: "frame_000000".into(),
                pts: None,
                faces: vec![face(0.0, 7), face(300.0, 2)],
            },
        );
        let count =
            |only: &[u32], tracks: &[u32]| targets_by_frame(&store, only, tracks, None)[&0].len();
        assert_eq!(count(&[], &[]), 2);
        assert_eq!(count(&[], &[2]), 1);
        let picked = &targets_by_frame(&store, &[], &[2], None)[&0][0];
        assert!(
            picked.landmarks[0][0] >= 300.0,
            "track 2 is the face at x 300"
        );
        assert_eq!(count(&[0], &[2]), 0, "both conditions hold");
        assert_eq!(count(&[], &[5]), 0);
    }

    #[test]
    fn partial_names_keep_the_container_extension() {
        use crate::merge::output::partial_path;
        assert_eq!(
            partial_path(Path::new("/x/out.mp4")),
            PathBuf::from("/x/.out.partial.mp4")
        );
        assert_eq!(
            partial_path(Path::new("/x/frames")),
            PathBuf::from("/x/.frames.partial")
        );
    }
}
