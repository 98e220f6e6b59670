//! PNG frames on disk and the frame-export job (faceswap's `effmpeg extract`).

use std::path::Path;

use crate::atomic::{remove_stale_temps, write_atomic};
use crate::jobs::{JobContext, JobError};

use super::*;

/// Encodes an RGB frame as PNG.
pub fn encode_png(frame: &RgbFrame) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.write_header()?.write_image_data(&frame.data)?;
    Ok(out)
}

/// File name of exported frame `i`.
pub fn frame_file_name(i: u64) -> String {
    format!("frame_{i:06}.png")
}

impl From<MediaError> for JobError {
    fn from(e: MediaError) -> Self {
        JobError::Failed(e.to_string())
    }
}

/// Writes every `every_nth` frame of `input` as PNG into `out_dir`. Frames already on disk
/// (written atomically, so complete) are skipped, which is what makes resume continue.
pub fn extract_frames(
    input: &Path,
    out_dir: &Path,
    every_nth: u32,
    ctx: &JobContext,
) -> Result<(), JobError> {
    let info = probe(input)?;
    std::fs::create_dir_all(out_dir).map_err(|e| {
        JobError::Failed(format!(
            "cannot create output folder {}: {e}",
            out_dir.display()
        ))
    })?;
    let stale = remove_stale_temps(out_dir).unwrap_or(0);
    let nth = every_nth.max(1) as u64;
    let total = info.frames.map(|n| n.div_ceil(nth));
    ctx.log(format!(
        "extracting every {nth} frame(s) of {} ({}x{}, {} frames) into {}{}",
        input.display(),
        info.width,
        info.height,
        info.frames.map_or("unknown".into(), |n| n.to_string()),
        out_dir.display(),
        if stale > 0 {
            format!("; removed {stale} partial file(s)")
        } else {
            String::new()
        }
    ));
    let present = std::cell::Cell::new(0u64);
    let skipped = std::cell::Cell::new(0u64);
    let decoded = decode_video::<JobError>(
        input,
        |i| {
            if i % nth != 0 {
                return false;
            }
            if out_dir.join(frame_file_name(i)).exists() {
                present.set(present.get() + 1);
                skipped.set(skipped.get() + 1);
                ctx.progress(present.get(), total, &format!("frame {i} already written"));
                return false;
            }
            true
        },
        |i, _pts, frame| {
            if ctx.should_stop() {
                return Err(JobError::Stopped);
            }
            let png = encode_png(&frame)
                .map_err(|e| JobError::Failed(format!("cannot encode frame {i}: {e}")))?;
            let path = out_dir.join(frame_file_name(i));
            write_atomic(&path, &png).map_err(|e| {
                JobError::Failed(format!(
                    "cannot write {}: {e} (is the disk full?)",
                    path.display()
                ))
            })?;
            present.set(present.get() + 1);
            ctx.progress(present.get(), total, &format!("frame {i}"));
            Ok(true)
        },
    )?;
    let n = present.get();
    ctx.progress(n, Some(n), "finished");
    ctx.log(format!(
        "decoded {decoded} frames; {n} frame files present ({} were already there)",
        skipped.get()
    ));
    Ok(())
}
