//! faceswap's clean-up tools for facesets: sort the aligned faces (blur, blur-fft, distance,
//! yaw, pitch, roll, histogram, size, face) into a sorted copy or into groups, and the
//! alignments jobs (remove-faces, draw, missing-frames, multi-faces, no-faces, spatial).
//! Sorting never renames the faceset's own files (the alignments refer to them): it writes
//! copies into another folder.

use std::path::{Path, PathBuf};

use rustfft::{FftPlanner, num_complex::Complex};

use crate::extract::geometry::HeadPose;
use crate::extract::store::Alignments;
use crate::extract::{ALIGNMENTS_FILE, FaceMeta, read_face_meta};

pub use faceswap_options::SortMethod;

/// One aligned face file with what sorting needs.
struct FaceFile {
    path: PathBuf,
    meta: FaceMeta,
    grey: Vec<f64>,
    rgb: image::RgbImage,
}

fn load_faces(faceset: &Path) -> Result<Vec<FaceFile>, String> {
    let files = crate::train::average::face_files(faceset)?;
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

/// BT.601 grey levels of an image, row by row.
fn grey_of(rgb: &image::RgbImage) -> Vec<f64> {
    rgb.pixels()
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect()
}

/// The aligned face's centre, 32 × 32 grey, zero mean and unit norm.
fn appearance(grey: &[f64], w: usize, h: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..32 * 32)
        .map(|i| {
            let (x, y) = (i % 32, i / 32);
            let sx = w / 4 + x * w / 2 / 32;
            let sy = h / 4 + y * h / 2 / 32;
            grey[sy.min(h - 1) * w + sx.min(w - 1)]
        })
        .collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// The track whose faces look most like `reference` (an aligned face file of the person, at
/// the faceset's centering): the mean appearance similarity over up to 8 faces per track.
/// Returns the track id and its similarity (1 = identical).
pub fn track_for_reference(faceset: &Path, reference: &Path) -> Result<(u32, f64), String> {
    let (_, store) = load_store(faceset)?;
    let load = |path: &Path| -> Result<Vec<f64>, String> {
        let rgb = image::open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .to_rgb8();
        Ok(appearance(
            &grey_of(&rgb),
            rgb.width() as usize,
            rgb.height() as usize,
        ))
    };
    let want = load(reference)?;
    let mut by_track: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for f in store.frames.values().flat_map(|e| &e.faces) {
        if let (Some(t), Some(file)) = (f.track, &f.file) {
            by_track.entry(t).or_default().push(file);
        }
    }
    let mut best: Option<(u32, f64)> = None;
    for (id, files) in by_track {
        let step = files.len().div_ceil(8).max(1);
        let mut sims = Vec::new();
        for file in files.iter().step_by(step) {
            let v = load(&faceset.join(file))?;
            sims.push(want.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>());
        }
        let sim = sims.iter().sum::<f64>() / sims.len().max(1) as f64;
        if best.is_none_or(|(_, s)| sim > s) {
            best = Some((id, sim));
        }
    }
    best.ok_or_else(|| {
        format!(
            "{} has no tracks to match a reference face to (extract the video again)",
            faceset.display()
        )
    })
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
                crate::extract::pipeline::face_geometry(&lm).1
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

fn load_store(faceset: &Path) -> Result<(PathBuf, Alignments), String> {
    let path = faceset.join(ALIGNMENTS_FILE);
    let store = Alignments::load(&path).map_err(|e| e.to_string())?;
    Ok((path, store))
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

/// faceswap's "spatial": smooths each track's landmarks over time in the alignments (for
/// stores extracted without smoothing, or imported), re-aligning each face; the face files are
/// then stale: rewrite them with `alignments extract`. Returns the faces changed.
pub fn spatial(
    faceset: &Path,
    smoothing: crate::extract::track::Smoothing,
) -> Result<usize, String> {
    use crate::extract::track::Smoother;
    let (path, mut store) = load_store(faceset)?;
    if store
        .frames
        .values()
        .flat_map(|e| &e.faces)
        .all(|f| f.track.is_none())
    {
        return Err(format!(
            "{} has no tracks (not a video, or extracted before tracks): nothing to smooth over time",
            path.display()
        ));
    }
    let fps = store.source.fps.unwrap_or(25.0);
    let ids: std::collections::BTreeSet<u32> = store
        .frames
        .values()
        .flat_map(|e| e.faces.iter().filter_map(|f| f.track))
        .collect();
    let mut changed = 0;
    for id in ids {
        let mut smoother = Smoother::new(Some(smoothing), fps);
        let mut last: Option<u64> = None;
        for (&i, entry) in store.frames.iter_mut() {
            for f in entry.faces.iter_mut().filter(|f| f.track == Some(id)) {
                if last.is_some_and(|l| i != l + 1) {
                    smoother.reset();
                }
                last = Some(i);
                let s = smoother.smooth(std::slice::from_ref(&f.face))[0];
                let (legacy, distance, roll) =
                    crate::extract::pipeline::face_geometry(&s.landmarks);
                f.face.landmarks = s.landmarks.to_vec();
                f.face.legacy = legacy;
                f.face.distance = distance;
                f.face.roll_deg = roll;
                changed += 1;
            }
        }
    }
    store.smoothing = Some(smoothing);
    store.save(&path).map_err(|e| e.to_string())?;
    Ok(changed)
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
            spatial(faceset, Default::default()).map_err(JobError::Failed)?
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
