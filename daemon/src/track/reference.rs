//! Picking a person's track by a reference face (`convert --reference`).

use std::path::Path;

use crate::sampling::{appearance, grey_of};

/// The track whose faces look most like `reference` (an aligned face file of the person, at
/// the faceset's centering): the mean appearance similarity over up to 8 faces per track.
/// Returns the track id and its similarity (1 = identical).
pub fn track_for_reference(faceset: &Path, reference: &Path) -> Result<(u32, f64), String> {
    let (_, store) = crate::faceset::load_store(faceset)?;
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
