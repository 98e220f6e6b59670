//! Where converted frames go: an image sequence or a video with the source's audio, built
//! under a temporary name and renamed when complete; each carries the provenance tag, and a
//! visible label when asked.

use std::path::{Path, PathBuf};

use faceswap_protocol::{ConvertSettings, ImageFormat};
use ffmpeg_next as ffmpeg;

use super::error::ConvertError;
use crate::media::{self, RgbFrame};

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

/// Where finished frames go.
pub(super) trait FrameSink {
    fn write(&mut self, index: u64, name: &str, frame: &RgbFrame) -> Result<(), ConvertError>;
    /// Completes the output under its final name.
    fn finish(self: Box<Self>) -> Result<(), ConvertError>;
}

/// Image sequence: files in a temporary folder beside the output, renamed at the end.
pub(super) struct ImageSink {
    temp: PathBuf,
    output: PathBuf,
    tiff: bool,
    tag: String,
}

impl ImageSink {
    pub(super) fn create(
        output: &Path,
        format: ImageFormat,
        tag: String,
    ) -> Result<Self, ConvertError> {
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
pub(super) fn partial_path(output: &Path) -> PathBuf {
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

pub(super) fn encode_tagged_png(frame: &RgbFrame, tag: &str) -> Result<Vec<u8>, String> {
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

pub(super) fn encode_tiff(frame: &RgbFrame, tag: &str) -> Result<Vec<u8>, String> {
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
pub(super) struct VideoSink {
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
    pub(super) fn create(
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
    pub(super) fn audio(
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
