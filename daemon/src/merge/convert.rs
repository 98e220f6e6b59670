//! The convert job: every frame of the destination video (or image folder) through the merge,
//! written as a video with the source's audio muxed back, or as PNG / TIFF images. The output
//! is built under a temporary name beside the final one and renamed only when complete, and it
//! carries a provenance tag saying it was face-swapped by Faceswap++.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::{ComputeDevice, FaceModel};
use faceswap_protocol::{ConvertSettings, ImageFormat};
use ffmpeg_next as ffmpeg;

use super::color::{ColorTransfer, ManualBalance, MaskStatistics};
use super::{
    FacePredictor, MergeMode, MergeSettings, Motion, Prediction, Rgb, TargetFace, face_centre,
    merge_frame,
};
use crate::checkpoint;
use crate::extract::geometry::Centering;
use crate::extract::image::load_image;
use crate::extract::store::{Alignments, FrameEntry};
use crate::extract::{ALIGNMENTS_FILE, image_files};
use crate::masks::plane::{MaskMode, Plane};
use crate::media::{self, RgbFrame};
use crate::train::{MODEL_FILE, ModelFile};

/// Why a conversion stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An option is wrong.
    #[error("{0}")]
    Settings(String),
    /// The model folder cannot be used.
    #[error("model {path}: {reason}")]
    Model {
        /// The model folder.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The alignments cannot be used.
    #[error("{0}")]
    Alignments(String),
    /// A frame of the input has no entry in the alignments.
    #[error(
        "frame {index} ({name}) of {input} has no entry in {alignments}: the alignments come from another source or an interrupted extract; run `faceswapd extract` on this input again (it resumes), or pass --allow-missing-alignments to pass such frames through unchanged"
    )]
    MissingAlignments {
        /// Frame index.
        index: u64,
        /// Frame name.
        name: String,
        /// The input.
        input: String,
        /// The alignments file.
        alignments: String,
    },
    /// The input cannot be read.
    #[error("{0}")]
    Input(String),
    /// The output cannot be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// The model failed on a frame.
    #[error("frame {0}: {1}")]
    Merge(u64, String),
    /// The caller asked to stop (nothing was left under the output name).
    #[error("stopped after {0} frames; the partial output was removed")]
    Stopped(u64),
}

impl From<crate::media::MediaError> for ConvertError {
    fn from(e: crate::media::MediaError) -> Self {
        ConvertError::Input(e.to_string())
    }
}

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

/// The merge settings a job's options ask for.
pub fn merge_settings(s: &ConvertSettings) -> Result<MergeSettings, ConvertError> {
    let manual = ManualBalance {
        space: s.balance_space,
        balance: s.balance,
        contrast: s.contrast,
        brightness: s.brightness,
    };
    let m = MergeSettings {
        mode: s.mode,
        mask_mode: s.mask_mode,
        color: ColorTransfer::from_mode(s.color, manual),
        mask_statistics: if s.dfl_mask_statistics {
            MaskStatistics::DflParity
        } else {
            MaskStatistics::InsideMask
        },
        erode: s.erode,
        blur: s.blur,
        face_scale: s.face_scale,
        sharpen: s.sharpen,
        sharpen_kind: s.sharpen_kind,
        motion_blur: s.motion_blur,
        hist_match_threshold: s.hist_match_threshold,
        masked_hist_match: s.masked_hist_match,
        opacity: s.opacity,
        seed: s.seed,
    };
    m.validate()
        .map_err(|e| ConvertError::Settings(e.to_string()))?;
    Ok(m)
}

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
                "cannot read {MODEL_FILE} ({e}); point --model at a folder written by `faceswapd train`"
            ))
        })?;
        let file: ModelFile =
            toml::from_str(&text).map_err(|e| fail(format!("{MODEL_FILE} is damaged ({e})")))?;
        let opts = file.options().map_err(fail)?;
        let centering = file.centering().map_err(ConvertError::Settings)?;
        let (latest, _warnings) =
            checkpoint::load_latest(model_dir).map_err(|e| fail(format!("{e}")))?;
        let ck = latest.ok_or_else(|| {
            fail("has no checkpoint yet; train it first (`faceswapd train`)".into())
        })?;
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

/// The provenance tag written into every output.
pub fn provenance(project: &str) -> String {
    let project = if project.is_empty() {
        "unnamed"
    } else {
        project
    };
    format!(
        "Face-swapped by Faceswap++ {} (project: {project}). Synthetic media.",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether `path` names a video file (by extension) rather than an image folder.
pub fn is_video_path(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "mp4" | "mkv" | "mov" | "avi" | "webm"
        )
    })
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
    ) -> Vec<&'a crate::extract::store::StoredFace> {
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

/// Where finished frames go.
trait FrameSink {
    fn write(&mut self, index: u64, name: &str, frame: &RgbFrame) -> Result<(), ConvertError>;
    /// Completes the output under its final name.
    fn finish(self: Box<Self>) -> Result<(), ConvertError>;
}

/// Image sequence: files in a temporary folder beside the output, renamed at the end.
struct ImageSink {
    temp: PathBuf,
    output: PathBuf,
    tiff: bool,
    tag: String,
}

impl ImageSink {
    fn create(output: &Path, format: ImageFormat, tag: String) -> Result<Self, ConvertError> {
        let tiff = format == ImageFormat::Tiff;
        let out_err = |reason: String| ConvertError::Output {
            path: output.to_path_buf(),
            reason,
        };
        if output.exists() {
            let empty = std::fs::read_dir(output)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(out_err(
                    "it already exists and is not an empty folder; choose a new output name or remove it".into(),
                ));
            }
        }
        let temp = partial_path(output);
        let _ = std::fs::remove_dir_all(&temp);
        std::fs::create_dir_all(&temp).map_err(|e| ConvertError::Output {
            path: temp.clone(),
            reason: format!("{e} (is the folder writable and the disk not full?)"),
        })?;
        Ok(ImageSink {
            temp,
            output: output.to_path_buf(),
            tiff,
            tag,
        })
    }
}

impl FrameSink for ImageSink {
    fn write(&mut self, _index: u64, name: &str, frame: &RgbFrame) -> Result<(), ConvertError> {
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        let (file, bytes) = if self.tiff {
            (format!("{stem}.tiff"), encode_tiff(frame, &self.tag))
        } else {
            (format!("{stem}.png"), encode_tagged_png(frame, &self.tag))
        };
        let path = self.temp.join(file);
        let bytes = bytes.map_err(|reason| ConvertError::Output {
            path: path.clone(),
            reason,
        })?;
        crate::atomic::write_atomic(&path, &bytes).map_err(|e| ConvertError::Output {
            path,
            reason: format!("{e} (is the disk full?)"),
        })
    }

    fn finish(self: Box<Self>) -> Result<(), ConvertError> {
        if self.output.exists() {
            std::fs::remove_dir(&self.output).map_err(|e| ConvertError::Output {
                path: self.output.clone(),
                reason: e.to_string(),
            })?;
        }
        std::fs::rename(&self.temp, &self.output).map_err(|e| ConvertError::Output {
            path: self.output.clone(),
            reason: e.to_string(),
        })
    }
}

impl Drop for ImageSink {
    fn drop(&mut self) {
        // Unfinished: the partial folder goes (after finish it no longer exists).
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// `dir/.name.partial` beside `output` (same file system, so the final rename is atomic);
/// video outputs keep their extension so FFmpeg picks the container from it.
fn partial_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let partial = match output.extension().and_then(|e| e.to_str()) {
        Some(ext) if is_video_path(output) => {
            let stem = name.strip_suffix(&format!(".{ext}")).unwrap_or(&name);
            format!(".{stem}.partial.{ext}")
        }
        _ => format!(".{name}.partial"),
    };
    output.with_file_name(partial)
}

fn encode_tagged_png(frame: &RgbFrame, tag: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.add_text_chunk(
        "Software".into(),
        format!("Faceswap++ {}", env!("CARGO_PKG_VERSION")),
    )
    .and_then(|_| enc.add_text_chunk("Comment".into(), tag.to_string()))
    .map_err(|e| e.to_string())?;
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&frame.data))
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn encode_tiff(frame: &RgbFrame, tag: &str) -> Result<Vec<u8>, String> {
    use tiff::encoder::{TiffEncoder, colortype::RGB8};
    use tiff::tags::Tag;
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut cursor).map_err(|e| e.to_string())?;
    let mut img = enc
        .new_image::<RGB8>(frame.width, frame.height)
        .map_err(|e| e.to_string())?;
    img.encoder()
        .write_tag(Tag::ImageDescription, tag)
        .and_then(|_| {
            img.encoder().write_tag(
                Tag::Software,
                format!("Faceswap++ {}", env!("CARGO_PKG_VERSION")).as_str(),
            )
        })
        .map_err(|e| e.to_string())?;
    img.write_data(&frame.data).map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

/// A video file: H.264 (or the chosen encoder) plus the source's audio stream copied, written
/// to a partial name and renamed when the trailer is written.
struct VideoSink {
    octx: ffmpeg::format::context::Output,
    encoder: ffmpeg::encoder::Video,
    scaler: Option<ffmpeg::software::scaling::Context>,
    pixel: ffmpeg::format::Pixel,
    enc_time_base: ffmpeg::Rational,
    size: (u32, u32),
    next_pts: i64,
    temp: PathBuf,
    output: PathBuf,
    finished: bool,
}

impl VideoSink {
    #[allow(clippy::too_many_arguments)]
    fn create(
        output: &Path,
        size: (u32, u32),
        rate: ffmpeg::Rational,
        audio: Option<&ffmpeg::format::stream::Stream>,
        s: &ConvertSettings,
        tag: &str,
    ) -> Result<Self, ConvertError> {
        media::init()?;
        let temp = partial_path(output);
        let fail = |reason: String| ConvertError::Output {
            path: output.to_path_buf(),
            reason,
        };
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(fail(if parent.exists() {
                format!(
                    "{} is a file, not a folder; choose an output inside a folder",
                    parent.display()
                )
            } else {
                format!(
                    "its folder {} does not exist; create it first",
                    parent.display()
                )
            }));
        }
        let mut octx = ffmpeg::format::output(&temp).map_err(|e| {
            fail(format!(
                "{e} (is the folder writable, the disk not full, and the extension one FFmpeg knows: .mp4, .mkv, .mov?)"
            ))
        })?;
        let codec = ffmpeg::encoder::find_by_name(&s.codec).ok_or_else(|| {
            ConvertError::Settings(format!(
                "video encoder {:?} is not in this FFmpeg build; try libx264, mpeg4 or ffv1 (`ffmpeg -encoders` lists them)",
                s.codec
            ))
        })?;
        let pixel: ffmpeg::format::Pixel = s.pixel_format.parse().map_err(|_| {
            ConvertError::Settings(format!(
                "unknown pixel format {:?}; try yuv420p",
                s.pixel_format
            ))
        })?;
        let global_header = octx
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let mut ost = octx.add_stream(codec).map_err(|e| fail(e.to_string()))?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail(e.to_string()))?;
        let time_base = ffmpeg::Rational(rate.denominator().max(1), rate.numerator().max(1));
        enc.set_width(size.0);
        enc.set_height(size.1);
        enc.set_format(pixel);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(rate));
        if global_header {
            enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = ffmpeg::Dictionary::new();
        if s.codec.contains("264") || s.codec.contains("265") || s.codec.contains("vpx") {
            opts.set("crf", &s.crf.to_string());
            opts.set("preset", "medium");
        } else if s.codec == "mpeg4" {
            // mpeg4 has no CRF; qscale 2…31 is its quality knob.
            opts.set("qscale", &(s.crf.clamp(2, 31)).to_string());
        }
        let encoder = enc.open_with(opts).map_err(|e| {
            ConvertError::Settings(format!(
                "cannot open encoder {} for {}×{} {}: {e}",
                s.codec, size.0, size.1, s.pixel_format
            ))
        })?;
        ost.set_parameters(&encoder);
        ost.set_time_base(time_base);
        if let Some(a) = audio {
            let mut aost = octx
                .add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::None))
                .map_err(|e| fail(e.to_string()))?;
            aost.set_parameters(a.parameters());
            aost.set_time_base(a.time_base());
            // SAFETY: clearing the codec tag lets the muxer choose one valid for this container
            // (the documented FFmpeg remux step); the pointer is the stream's own parameters.
            unsafe {
                (*aost.parameters().as_mut_ptr()).codec_tag = 0;
            }
        }
        let mut meta = ffmpeg::Dictionary::new();
        meta.set("comment", tag);
        meta.set("description", tag);
        meta.set(
            "encoded_by",
            &format!("Faceswap++ {}", env!("CARGO_PKG_VERSION")),
        );
        octx.set_metadata(meta);
        octx.write_header()
            .map_err(|e| fail(format!("{e} (is the disk full?)")))?;
        Ok(VideoSink {
            octx,
            encoder,
            scaler: None,
            pixel,
            enc_time_base: time_base,
            size,
            next_pts: 0,
            temp,
            output: output.to_path_buf(),
            finished: false,
        })
    }

    fn drain(&mut self) -> Result<(), ConvertError> {
        let mut packet = ffmpeg::Packet::empty();
        let ost_tb = self
            .octx
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(self.enc_time_base);
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.enc_time_base, ost_tb);
            packet
                .write_interleaved(&mut self.octx)
                .map_err(|e| ConvertError::Output {
                    path: self.output.clone(),
                    reason: format!("{e} (is the disk full?)"),
                })?;
        }
        Ok(())
    }

    /// Copies a source audio packet into the output.
    fn audio(
        &mut self,
        mut packet: ffmpeg::Packet,
        in_tb: ffmpeg::Rational,
    ) -> Result<(), ConvertError> {
        let Some(out_tb) = self.octx.stream(1).map(|s| s.time_base()) else {
            return Ok(());
        };
        packet.set_stream(1);
        packet.rescale_ts(in_tb, out_tb);
        packet.set_position(-1);
        packet
            .write_interleaved(&mut self.octx)
            .map_err(|e| ConvertError::Output {
                path: self.output.clone(),
                reason: format!("{e} (is the disk full?)"),
            })
    }
}

impl FrameSink for VideoSink {
    fn write(&mut self, _index: u64, _name: &str, frame: &RgbFrame) -> Result<(), ConvertError> {
        let fail = |reason: String| ConvertError::Output {
            path: self.output.clone(),
            reason,
        };
        if (frame.width, frame.height) != self.size {
            return Err(fail(format!(
                "frame size changed to {}×{} (the video is {}×{})",
                frame.width, frame.height, self.size.0, self.size.1
            )));
        }
        let mut rgb =
            ffmpeg::frame::Video::new(ffmpeg::format::Pixel::RGB24, frame.width, frame.height);
        let stride = rgb.stride(0);
        let row = frame.width as usize * 3;
        for y in 0..frame.height as usize {
            rgb.data_mut(0)[y * stride..y * stride + row]
                .copy_from_slice(&frame.data[y * row..(y + 1) * row]);
        }
        if self.scaler.is_none() {
            self.scaler = Some(
                ffmpeg::software::scaling::Context::get(
                    ffmpeg::format::Pixel::RGB24,
                    frame.width,
                    frame.height,
                    self.pixel,
                    frame.width,
                    frame.height,
                    ffmpeg::software::scaling::Flags::BICUBIC,
                )
                .map_err(|e| fail(e.to_string()))?,
            );
        }
        let mut out = ffmpeg::frame::Video::empty();
        if let Some(sc) = self.scaler.as_mut() {
            sc.run(&rgb, &mut out).map_err(|e| fail(e.to_string()))?;
        }
        out.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder
            .send_frame(&out)
            .map_err(|e| fail(e.to_string()))?;
        self.drain()
    }

    fn finish(mut self: Box<Self>) -> Result<(), ConvertError> {
        self.encoder.send_eof().map_err(|e| ConvertError::Output {
            path: self.output.clone(),
            reason: e.to_string(),
        })?;
        self.drain()?;
        self.octx
            .write_trailer()
            .map_err(|e| ConvertError::Output {
                path: self.output.clone(),
                reason: format!("{e} (is the disk full?)"),
            })?;
        // Flushed to disk before the rename, like every other file the daemon writes.
        std::fs::File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&self.temp, &self.output))
            .map_err(|e| ConvertError::Output {
                path: self.output.clone(),
                reason: e.to_string(),
            })?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for VideoSink {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Draws `text` (ASCII, 8×8 glyphs scaled to the frame) in white on a dark box, top-left.
pub fn draw_label(frame: &mut RgbFrame, text: &str) {
    use font8x8::UnicodeFonts;
    let scale = ((frame.height as usize) / 180).max(1);
    let pad = 4 * scale;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let chars: Vec<[u8; 8]> = text
        .chars()
        .map(|c| font8x8::BASIC_FONTS.get(c).unwrap_or([0; 8]))
        .collect();
    let box_w = (chars.len() * 8 * scale + 2 * pad).min(w);
    let box_h = (8 * scale + 2 * pad).min(h);
    for y in 0..box_h {
        for x in 0..box_w {
            let o = (y * w + x) * 3;
            for c in 0..3 {
                frame.data[o + c] = (frame.data[o + c] as u32 * 2 / 7) as u8;
            }
        }
    }
    for (k, glyph) in chars.iter().enumerate() {
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits & (1 << gx) == 0 {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let x = pad + (k * 8 + gx) * scale + sx;
                        let y = pad + gy * scale + sy;
                        if x < w && y < h {
                            let o = (y * w + x) * 3;
                            frame.data[o..o + 3].copy_from_slice(&[255, 255, 255]);
                        }
                    }
                }
            }
        }
    }
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
            let (id, similarity) = crate::tools::track_for_reference(folder, Path::new(reference))
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
        predictor.step, predictor.resolution, device
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
        use crate::extract::store::{SourceInfo, StoredFace};
        let face = |x: f64, track: u32| {
            let landmarks: Vec<[f64; 2]> = crate::extract::geometry::MEAN_FACE_51
                .iter()
                .cycle()
                .take(68)
                .map(|p| [x + p[0] * 100.0, 50.0 + p[1] * 100.0])
                .collect();
            let mut lm = [[0.0; 2]; 68];
            lm.copy_from_slice(&landmarks);
            StoredFace {
                track: Some(track),
                ..StoredFace::new(crate::extract::pipeline::Face::from_landmarks(
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
