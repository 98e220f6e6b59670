//! Job options (the wire's `ConvertSettings`) → the merge's typed settings.

use faceswap_protocol::ConvertSettings;

use super::MergeSettings;
use super::color::{ColorTransfer, ManualBalance, MaskStatistics};
use super::error::ConvertError;

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
