//! Decoding video frames: probing, seeking, and decoding runs of frames as packed RGB.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use super::*;

/// Reads the container header.
pub fn probe(path: &Path) -> Result<VideoInfo, MediaError> {
    init()?;
    let ictx = ffmpeg::format::input(path).map_err(|e| unreadable(path, e))?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| MediaError::NoVideo(path.to_path_buf()))?;
    let dec = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| unreadable(path, e))?;
    let rate = stream.avg_frame_rate();
    let fps = if rate.denominator() != 0 {
        rate.numerator() as f64 / rate.denominator() as f64
    } else {
        0.0
    };
    let frames = if stream.frames() > 0 {
        Some(stream.frames() as u64)
    } else if ictx.duration() > 0 && fps > 0.0 {
        Some((ictx.duration() as f64 / ffmpeg::ffi::AV_TIME_BASE as f64 * fps).round() as u64)
    } else {
        None
    };
    Ok(VideoInfo {
        width: dec.width(),
        height: dec.height(),
        frames,
        fps,
    })
}

/// Decodes every frame of `path` in order. `wanted(index)` says which frames to convert to RGB
/// (others are decoded but not converted); `on_frame` gets the converted ones with their pts and
/// may stop the walk by returning `Ok(false)`. Returns how many frames were decoded.
pub fn decode_video<E: From<MediaError>>(
    path: &Path,
    wanted: impl FnMut(u64) -> bool,
    on_frame: impl FnMut(u64, Option<i64>, RgbFrame) -> Result<bool, E>,
) -> Result<u64, E> {
    decode_video_from(path, 0, wanted, on_frame)
}

/// Packets read past frame `first` when finding its timestamp: more than any codec's reorder
/// depth (H.264/HEVC keep at most 16 frames), so every frame up to `first` has been seen.
const REORDER_WINDOW: usize = 32;

/// Where to start decoding for frame `first`: the timestamp (stream time base) of the last
/// keyframe at or before it, and frame `first`'s own pts. Reads packets only, up to a little past
/// `first` (or to the end). None when timestamps cannot number frames as sequential decoding
/// does (a packet without pts, duplicate pts, packets an edit list discards), when the clip has
/// no frame `first`, or when nothing would be skipped.
fn seek_point(
    ictx: &mut ffmpeg::format::context::Input,
    stream: usize,
    start_time: i64,
    first: u64,
) -> Option<(i64, i64)> {
    let first = usize::try_from(first).ok()?;
    let mut seen = Vec::with_capacity(first + REORDER_WINDOW + 1);
    let mut keys = Vec::new();
    for (s, packet) in ictx.packets() {
        if s.index() != stream {
            continue;
        }
        let pts = packet.pts()?;
        if pts < start_time {
            return None;
        }
        if packet.is_key() {
            keys.push(pts);
        }
        seen.push(pts);
        if seen.len() > first + REORDER_WINDOW {
            break;
        }
    }
    // Stopped early past the window, or read to the end: either way every frame up to `first`
    // has been seen.
    if seen.len() <= first {
        return None;
    }
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let target = seen[first];
    let key = keys.into_iter().filter(|&k| k <= target).max()?;
    (key > seen[0]).then_some((key, target))
}

/// Seeking could not be trusted to number frames; decode from the start instead.
struct SeekMismatch;

/// Like [`decode_video`], but frames before `first` are not needed: where the stream's
/// timestamps allow, decoding starts at the keyframe before `first` instead of frame 0 (frame
/// numbers stay those of sequential decoding, checked against frame `first`'s timestamp, else it
/// decodes from the start). Returns one past the last frame index decoded.
pub fn decode_video_from<E: From<MediaError>>(
    path: &Path,
    first: u64,
    mut wanted: impl FnMut(u64) -> bool,
    mut on_frame: impl FnMut(u64, Option<i64>, RgbFrame) -> Result<bool, E>,
) -> Result<u64, E> {
    init()?;
    if first > 0 {
        match decode_run(path, Some(first), &mut wanted, &mut on_frame)? {
            Ok(n) => return Ok(n),
            Err(SeekMismatch) => {
                tracing::debug!(
                    "{}: seeking to frame {first} not exact; decoding from the start",
                    path.display()
                )
            }
        }
    }
    match decode_run(path, None, &mut wanted, &mut on_frame)? {
        Ok(n) => Ok(n),
        Err(SeekMismatch) => Err(unreadable(path, "frame numbering failed").into()),
    }
}

/// One decoding pass: from the start, or from the keyframe before frame `seek_to`
/// (Err(SeekMismatch) before any frame was handed out when the numbering cannot be trusted).
fn decode_run<E: From<MediaError>>(
    path: &Path,
    seek_to: Option<u64>,
    wanted: &mut impl FnMut(u64) -> bool,
    on_frame: &mut impl FnMut(u64, Option<i64>, RgbFrame) -> Result<bool, E>,
) -> Result<Result<u64, SeekMismatch>, E> {
    let mut ictx = ffmpeg::format::input(path).map_err(|e| unreadable(path, e))?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| MediaError::NoVideo(path.to_path_buf()))?;
    let index = stream.index();
    let time_base = stream.time_base();
    let start_time = stream.start_time();
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| unreadable(path, e))?;
    // Where numbering starts: frame 0, or frame `first` at the pts `target`.
    let (mut target, mut count) = (None, 0u64);
    if let Some(first) = seek_to {
        let Some((key, pts)) = seek_point(&mut ictx, index, start_time, first) else {
            return Ok(Err(SeekMismatch));
        };
        let us = ffmpeg::Rescale::rescale(&key, time_base, ffmpeg::rescale::TIME_BASE);
        if ictx.seek(us, ..us).is_err() {
            return Ok(Err(SeekMismatch));
        }
        (target, count) = (Some(pts), first);
    }
    let (w, h) = (decoder.width(), decoder.height());
    let mut scaler = ffmpeg::software::scaling::Context::get(
        decoder.format(),
        w,
        h,
        ffmpeg::format::Pixel::RGB24,
        w,
        h,
        ffmpeg::software::scaling::Flags::BILINEAR,
    )
    .map_err(|e| unreadable(path, e))?;
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut rgb = ffmpeg::frame::Video::empty();
    // Drains decoded frames; Ok(Ok(false)) means the caller asked to stop.
    let mut drain =
        |decoder: &mut ffmpeg::decoder::Video| -> Result<Result<bool, SeekMismatch>, E> {
            while decoder.receive_frame(&mut decoded).is_ok() {
                if let Some(t) = target {
                    // Before frame `first`: skipped. The first frame at or past it must be it.
                    match decoded.pts() {
                        Some(p) if p < t => continue,
                        Some(p) if p == t => target = None,
                        _ => return Ok(Err(SeekMismatch)),
                    }
                }
                let i = count;
                count += 1;
                if !wanted(i) {
                    continue;
                }
                scaler
                    .run(&decoded, &mut rgb)
                    .map_err(|e| unreadable(path, e))?;
                let frame = packed_rgb(&rgb);
                if !on_frame(i, decoded.pts(), frame)? {
                    return Ok(Ok(false));
                }
            }
            Ok(Ok(true))
        };
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        decoder
            .send_packet(&packet)
            .map_err(|e| unreadable(path, e))?;
        match drain(&mut decoder)? {
            Ok(true) => {}
            Ok(false) => return Ok(Ok(count)),
            Err(m) => return Ok(Err(m)),
        }
    }
    decoder.send_eof().map_err(|e| unreadable(path, e))?;
    if let Err(m) = drain(&mut decoder)? {
        return Ok(Err(m));
    }
    if target.is_some() {
        // Frame `first` never came out.
        return Ok(Err(SeekMismatch));
    }
    if count == 0 {
        return Err(unreadable(path, "no frame could be decoded").into());
    }
    Ok(Ok(count))
}

/// An FFmpeg RGB24 frame's pixels without its row padding.
pub fn packed_rgb(rgb: &ffmpeg::frame::Video) -> RgbFrame {
    let (w, h) = (rgb.width(), rgb.height());
    let row = w as usize * 3;
    let stride = rgb.stride(0);
    let src = rgb.data(0);
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        data.extend_from_slice(&src[y * stride..y * stride + row]);
    }
    RgbFrame {
        width: w,
        height: h,
        data,
    }
}
