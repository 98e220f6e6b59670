//! Faces over time: temporal smoothing of landmarks (a One-Euro filter per followed face, run
//! causally while a video is extracted, or over a finished store by the `spatial` tool), track
//! ids linking each person's faces across frames with a per-track report, and picking a
//! person's track by a reference face.

mod link;
mod reference;
mod smooth;
mod spatial;
#[cfg(test)]
mod tests;

pub use link::{
    HIGH_SHAKE, LOW_PRESENCE_LOGIT, Linking, SHAKE_WINDOW, TrackReport, jitter, link_tracks,
    track_reports,
};
pub use reference::track_for_reference;
pub use smooth::{Smoothed, Smoother, Smoothing};
pub use spatial::spatial;
