//! faceswap's clean-up tools for facesets: sort the aligned faces (blur, blur-fft, distance,
//! yaw, pitch, roll, histogram, size, face) into a sorted copy or into groups, and the
//! alignments jobs (remove-faces, draw, missing-frames, multi-faces, no-faces, spatial).
//! Sorting never renames the faceset's own files (the alignments refer to them): it writes
//! copies into another folder.

use std::path::{Path, PathBuf};

use rustfft::{FftPlanner, num_complex::Complex};

use crate::faceset::{FaceMeta, load_store, read_face_meta};
use crate::geometry::HeadPose;
use crate::sampling::{appearance, grey_of};

pub use faceswap_options::SortMethod;

/// One aligned face file with what sorting needs.
struct FaceFile {
    path: PathBuf,
    meta: FaceMeta,
    grey: Vec<f64>,
    rgb: image::RgbImage,
}

fn load_faces(faceset: &Path) -> Result<Vec<FaceFile>, String> {
    let files = crate::faceset::face_files(faceset)?;
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let meta = read_face_meta(&path)?;
        let rgb = image::open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .to_rgb8();
        let grey = grey_of(&rgb);
        out.push(FaceFile {
            path,
            meta,
            grey,
            rgb,
        });
    }
    if out.is_empty() {
        return Err(format!("no aligned faces in {}", faceset.display()));
    }
    Ok(out)
}

/// Variance of the 4-neighbour Laplacian (OpenCV's `Laplacian(...).var()`).
fn laplacian_variance(grey: &[f64], w: usize, h: usize) -> f64 {
    let mut vals = Vec::with_capacity(w * h);
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let c = grey[y * w + x];
            vals.push(
                grey[y * w + x - 1]
                    + grey[y * w + x + 1]
                    + grey[(y - 1) * w + x]
                    + grey[(y + 1) * w + x]
                    - 4.0 * c,
            );
        }
    }
    let n = vals.len().max(1) as f64;
    let mean = vals.iter().sum::<f64>() / n;
    vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
}

/// faceswap's blur-fft: zero the low frequencies (a centred square of side 1/6 of the face) of
/// the grey face's 2D FFT, transform back, mean of `20·log(|·|)`.
fn blur_fft(grey: &[f64], w: usize, h: usize) -> f64 {
    let mut planner = FftPlanner::<f64>::new();
    let (row_fft, col_fft) = (planner.plan_fft_forward(w), planner.plan_fft_forward(h));
    let (row_inv, col_inv) = (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h));
    let mut data: Vec<Complex<f64>> = grey.iter().map(|v| Complex::new(*v, 0.0)).collect();
    let columns = |data: &mut Vec<Complex<f64>>, fft: &dyn rustfft::Fft<f64>| {
        for x in 0..w {
            let mut col: Vec<Complex<f64>> = (0..h).map(|y| data[y * w + x]).collect();
            fft.process(&mut col);
            for (y, v) in col.into_iter().enumerate() {
                data[y * w + x] = v;
            }
        }
    };
    for row in data.chunks_mut(w) {
        row_fft.process(row);
    }
    columns(&mut data, col_fft.as_ref());
    // Low frequencies sit at the corners of an unshifted spectrum.
    let (rx, ry) = ((w / 12).max(1), (h / 12).max(1));
    for y in 0..h {
        for x in 0..w {
            let near_x = x < rx || x >= w - rx;
            let near_y = y < ry || y >= h - ry;
            if near_x && near_y {
                data[y * w + x] = Complex::new(0.0, 0.0);
            }
        }
    }
    for row in data.chunks_mut(w) {
        row_inv.process(row);
    }
    columns(&mut data, col_inv.as_ref());
    let n = (w * h) as f64;
    data.iter()
        .map(|c| 20.0 * (c.norm() / n).max(1e-12).ln())
        .sum::<f64>()
        / n
}

/// Normalised RGB histogram, 32 bins per channel.
fn histogram(img: &image::RgbImage) -> Vec<f64> {
    let mut h = vec![0.0; 96];
    for p in img.pixels() {
        for c in 0..3 {
            h[c * 32 + p[c] as usize / 8] += 1.0;
        }
    }
    let n = (img.width() * img.height()).max(1) as f64 * 3.0;
    h.iter().map(|v| v / n).collect()
}

/// Bhattacharyya distance between two normalised histograms.
fn bhattacharyya(a: &[f64], b: &[f64]) -> f64 {
    let bc: f64 = a.iter().zip(b).map(|(x, y)| (x * y).sqrt()).sum();
    (1.0 - bc.min(1.0)).sqrt()
}

/// Greedy chain: start at the first face, then always the nearest not yet taken.
fn chain(n: usize, dist: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    let mut order = vec![0];
    let mut left: Vec<usize> = (1..n).collect();
    while !left.is_empty() {
        let last = *order.last().unwrap_or(&0);
        let (k, _) = left
            .iter()
            .enumerate()
            .map(|(k, &j)| (k, dist(last, j)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        order.push(left.remove(k));
    }
    order
}

/// One face in sorted order, with its score (for chain methods, the distance to the face
/// before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sorted {
    /// The faceset's face file.
    pub file: PathBuf,
    /// The method's measure.
    pub score: f64,
}

/// The faces of a faceset in `method`'s order.
pub fn sort_faces(faceset: &Path, method: SortMethod) -> Result<Vec<Sorted>, String> {
    let faces = load_faces(faceset)?;
    let scalar = |f: &FaceFile| -> f64 {
        let (w, h) = (f.rgb.width() as usize, f.rgb.height() as usize);
        let pose = || {
            let mut lm = [[0.0; 2]; 68];
            for (o, p) in lm.iter_mut().zip(&f.meta.landmarks) {
                *o = f.meta.legacy.apply(*p);
            }
            HeadPose::solve(&lm).angles_deg()
        };
        match method {
            // Descending measures are negated so every scalar method sorts ascending.
            SortMethod::Blur => -laplacian_variance(&f.grey, w, h),
            SortMethod::BlurFft => -blur_fft(&f.grey, w, h),
            SortMethod::Distance => {
                let mut lm = [[0.0; 2]; 68];
                for (o, p) in lm.iter_mut().zip(&f.meta.landmarks) {
                    *o = *p;
                }
                crate::geometry::face_geometry(&lm).1
            }
            SortMethod::Pitch => pose()[0],
            SortMethod::Yaw => pose()[1],
            SortMethod::Roll => -f.meta.legacy.rotation().to_degrees(),
            SortMethod::Size => -1.0 / f.meta.legacy.scale(),
            SortMethod::Histogram | SortMethod::Face => 0.0,
        }
    };
    let order: Vec<(usize, f64)> = match method {
        SortMethod::Histogram => {
            let hs: Vec<Vec<f64>> = faces.iter().map(|f| histogram(&f.rgb)).collect();
            let order = chain(faces.len(), |a, b| bhattacharyya(&hs[a], &hs[b]));
            with_steps(&order, |a, b| bhattacharyya(&hs[a], &hs[b]))
        }
        SortMethod::Face => {
            let vs: Vec<Vec<f64>> = faces
                .iter()
                .map(|f| appearance(&f.grey, f.rgb.width() as usize, f.rgb.height() as usize))
                .collect();
            let d = |a: usize, b: usize| {
                1.0 - vs[a].iter().zip(&vs[b]).map(|(x, y)| x * y).sum::<f64>()
            };
            let order = chain(faces.len(), d);
            with_steps(&order, d)
        }
        _ => {
            let mut scored: Vec<(usize, f64)> = faces
                .iter()
                .enumerate()
                .map(|(i, f)| (i, scalar(f)))
                .collect();
            scored.sort_by(|a, b| a.1.total_cmp(&b.1));
            scored
                .into_iter()
                .map(|(i, s)| {
                    let descending = matches!(
                        method,
                        SortMethod::Blur | SortMethod::BlurFft | SortMethod::Size
                    );
                    (i, if descending { -s } else { s })
                })
                .collect()
        }
    };
    Ok(order
        .into_iter()
        .map(|(i, score)| Sorted {
            file: faces[i].path.clone(),
            score,
        })
        .collect())
}

fn with_steps(order: &[usize], d: impl Fn(usize, usize) -> f64) -> Vec<(usize, f64)> {
    order
        .iter()
        .enumerate()
        .map(|(k, &i)| (i, if k == 0 { 0.0 } else { d(order[k - 1], i) }))
        .collect()
}

/// Copies the sorted faces into `out`: `NNNNN_<name>` in order, or with `groups` > 1 into
/// `out/group_NN/` folders of consecutive faces (equal shares of the order). Returns the
/// files written.
pub fn write_sorted(sorted: &[Sorted], out: &Path, groups: usize) -> Result<Vec<PathBuf>, String> {
    let groups = groups.max(1);
    let mut written = Vec::with_capacity(sorted.len());
    for (rank, s) in sorted.iter().enumerate() {
        let name = s
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = if groups > 1 {
            out.join(format!("group_{:02}", rank * groups / sorted.len()))
        } else {
            out.to_path_buf()
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dst = dir.join(format!("{rank:05}_{name}"));
        std::fs::copy(&s.file, &dst)
            .map_err(|e| format!("cannot copy {} to {}: {e}", s.file.display(), dst.display()))?;
        written.push(dst);
    }
    Ok(written)
}

/// faceswap's "remove-faces": faces whose aligned file the user deleted from the faceset are
/// removed from the alignments. Returns how many were removed; the store is saved only when
/// something changed.
pub fn remove_faces(faceset: &Path) -> Result<usize, String> {
    let (path, mut store) = load_store(faceset)?;
    let mut removed = 0;
    for entry in store.frames.values_mut() {
        let before = entry.faces.len();
        entry.faces.retain(|f| {
            f.file
                .as_ref()
                .is_none_or(|file| faceset.join(file).is_file())
        });
        removed += before - entry.faces.len();
    }
    if removed > 0 {
        store.save(&path).map_err(|e| e.to_string())?;
    }
    Ok(removed)
}

/// Frames with more than one face (faceswap "multi-faces").
pub fn multi_faces(faceset: &Path) -> Result<Vec<u64>, String> {
    let (_, store) = load_store(faceset)?;
    Ok(store
        .frames
        .iter()
        .filter(|(_, e)| e.faces.len() > 1)
        .map(|(i, _)| *i)
        .collect())
}

/// Frames extracted with no face (faceswap "no-faces").
pub fn no_faces(faceset: &Path) -> Result<Vec<u64>, String> {
    let (_, store) = load_store(faceset)?;
    Ok(store
        .frames
        .iter()
        .filter(|(_, e)| e.faces.is_empty())
        .map(|(i, _)| *i)
        .collect())
}

/// Frames of `source` the alignments do not have (faceswap "missing-frames"; with `every N`
/// extraction the skipped frames are listed too).
pub fn missing_frames(faceset: &Path, source: &Path) -> Result<Vec<u64>, String> {
    let (_, store) = load_store(faceset)?;
    let count = if source.is_dir() {
        crate::extract::image_files(source)
            .map_err(|e| e.to_string())?
            .len() as u64
    } else {
        let mut n = 0u64;
        crate::media::decode_video::<crate::media::MediaError>(
            source,
            |_| false,
            |_, _, _| Ok(true),
        )
        .map(|c| n = c)
        .map_err(|e| e.to_string())?;
        n
    };
    Ok((0..count)
        .filter(|i| !store.frames.contains_key(i))
        .collect())
}

/// faceswap's "draw": every frame with faces, with each face's box and 68 landmarks drawn,
/// written as `frame_NNNNNN.png` into `out`. Returns the frames written.
pub fn draw(faceset: &Path, source: &Path, out: &Path) -> Result<usize, String> {
    let (_, store) = load_store(faceset)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut written = 0;
    let mut paint = |index: u64, frame: crate::media::RgbFrame| -> Result<(), String> {
        let Some(entry) = store.frames.get(&index).filter(|e| !e.faces.is_empty()) else {
            return Ok(());
        };
        let mut img = image::RgbImage::from_raw(frame.width, frame.height, frame.data)
            .ok_or("a decoded frame has the wrong size")?;
        let (w, h) = (img.width() as i64, img.height() as i64);
        let mut put = |x: i64, y: i64, c: [u8; 3]| {
            if (0..w).contains(&x) && (0..h).contains(&y) {
                img.put_pixel(x as u32, y as u32, image::Rgb(c));
            }
        };
        for f in &entry.faces {
            let [x0, y0, x1, y1] = f.face.bbox.map(|v| v.round() as i64);
            let colour = if f.face.rejected.is_some() {
                [255, 64, 64]
            } else {
                [64, 255, 64]
            };
            for x in x0..=x1 {
                put(x, y0, colour);
                put(x, y1, colour);
            }
            for y in y0..=y1 {
                put(x0, y, colour);
                put(x1, y, colour);
            }
            for p in &f.face.landmarks {
                let (px, py) = (p[0].round() as i64, p[1].round() as i64);
                for (dx, dy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
                    put(px + dx, py + dy, [255, 255, 0]);
                }
            }
        }
        let path = out.join(format!("frame_{index:06}.png"));
        img.save(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written += 1;
        Ok(())
    };
    let wanted = store.frames_with_faces();
    crate::extract::visit_frames(source, &wanted, |i, frame| {
        paint(i, frame).map_err(crate::extract::ExtractError::Input)
    })
    .map_err(|e| e.to_string())?;
    Ok(written)
}

/// Frame numbers as ranges: `0-9, 15, 20-22`.
pub fn frame_ranges(frames: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let mut j = i;
        while j + 1 < frames.len() && frames[j + 1] == frames[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            frames[i].to_string()
        } else {
            format!("{}-{}", frames[i], frames[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// The daemon job for [`faceswap_protocol::ToolJob`]: runs the tool and logs its result.
pub fn run_job(
    job: &faceswap_protocol::ToolJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    use faceswap_protocol::ToolSpec;
    let faceswap_protocol::ToolJob { faceset, tool } = job;
    let faceset = Path::new(faceset);
    let line = match tool {
        ToolSpec::Sort { by, out, groups } => {
            let sorted = sort_faces(faceset, *by).map_err(JobError::Failed)?;
            let files = write_sorted(&sorted, Path::new(out), *groups as usize)
                .map_err(JobError::Failed)?;
            format!("{} faces sorted by {by} into {out}", files.len())
        }
        ToolSpec::RemoveFaces => format!(
            "removed {} faces whose files are gone",
            remove_faces(faceset).map_err(JobError::Failed)?
        ),
        ToolSpec::Draw { source, out } => format!(
            "drew {} frames into {out}",
            draw(faceset, Path::new(source), Path::new(out)).map_err(JobError::Failed)?
        ),
        ToolSpec::MissingFrames { source } => {
            let f = missing_frames(faceset, Path::new(source)).map_err(JobError::Failed)?;
            format!("{} frames missing: {}", f.len(), frame_ranges(&f))
        }
        ToolSpec::MultiFaces => {
            let f = multi_faces(faceset).map_err(JobError::Failed)?;
            format!(
                "{} frames with several faces: {}",
                f.len(),
                frame_ranges(&f)
            )
        }
        ToolSpec::NoFaces => {
            let f = no_faces(faceset).map_err(JobError::Failed)?;
            format!("{} frames without a face: {}", f.len(), frame_ranges(&f))
        }
        ToolSpec::Spatial => format!(
            "smoothed {} faces; rewrite their files with `faceswapd alignments extract`",
            crate::track::spatial(faceset, Default::default()).map_err(JobError::Failed)?
        ),
        ToolSpec::XsegApply { model, device } => {
            let device = crate::device::job_device(device.as_deref(), ctx)?;
            let n = crate::masks::xseg::apply_xseg(faceset, Path::new(model), device)
                .map_err(JobError::Failed)?;
            format!("stored an xseg mask for {n} faces in {}", faceset.display())
        }
        ToolSpec::MaskGenerate { kinds, bisenet } => {
            crate::masks::generate_masks_job(faceset, kinds, bisenet.as_ref(), ctx)?
        }
        ToolSpec::Extract {
            source,
            size,
            centering,
        } => {
            let n = crate::extract::export_faces(faceset, Path::new(source), *size, *centering)
                .map_err(|e| JobError::Failed(e.to_string()))?;
            format!(
                "wrote {n} aligned faces into {}",
                faceset.join("faces").display()
            )
        }
    };
    ctx.progress(1, Some(1), tool.name());
    ctx.log(line);
    Ok(())
}
