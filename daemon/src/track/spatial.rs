//! faceswap's "spatial" alignments tool: smoothing a finished store's tracks over time.

use std::path::Path;

use super::smooth::{Smoother, Smoothing};
use crate::faceset::load_store;
use crate::geometry::face_geometry;

/// faceswap's "spatial": smooths each track's landmarks over time in the alignments (for
/// stores extracted without smoothing, or imported), re-aligning each face; the face files are
/// then stale: rewrite them with `alignments extract`. Returns the faces changed.
pub fn spatial(faceset: &Path, smoothing: Smoothing) -> Result<usize, String> {
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
                let (legacy, distance, roll) = face_geometry(&s.landmarks);
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
