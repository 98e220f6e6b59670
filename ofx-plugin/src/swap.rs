//! The "Faceswap" effect: its parameters, the swap settings read from them, and render, which
//! sends the source frame to the daemon through [`crate::DaemonLink`] and passes the source
//! through, with a persistent message, whenever the daemon cannot answer in time.

use std::ffi::CStr;

use faceswap_protocol::{
    ColorTransferMode, ConvertSettings, FrameOp, MaskMode, MergeMode, SwapSettings, SwapTarget,
    SwapView,
};
use openfx::sys::generic::core::*;
use openfx::sys::image_effect_v1::image_effect::*;

use crate::RenderOutcome;

use crate::host::*;

const TARGETS: [(&CStr, SwapTarget); 5] = [
    (c"Largest face", SwapTarget::Largest),
    (c"Every face", SwapTarget::All),
    (c"Face 1", SwapTarget::Index(0)),
    (c"Face 2", SwapTarget::Index(1)),
    (c"Face 3", SwapTarget::Index(2)),
];

const TARGETS_LABELS: [&CStr; 5] = choice_labels(&TARGETS);

// Choice order is what saved projects store: append only.
const MERGE_MODES: [(&CStr, MergeMode); 6] = named_choices![
    MergeMode::Overlay,
    MergeMode::HistMatch,
    MergeMode::Seamless,
    MergeMode::SeamlessHistMatch,
    MergeMode::RawRgb,
    MergeMode::Original,
];

const MERGE_MODES_LABELS: [&CStr; 6] = choice_labels(&MERGE_MODES);

const MASK_MODES: [(&CStr, MaskMode); 6] = [
    (
        MaskMode::LearnedPrdTimesDst.c_name(),
        MaskMode::LearnedPrdTimesDst,
    ),
    (
        MaskMode::LearnedPrdPlusDst.c_name(),
        MaskMode::LearnedPrdPlusDst,
    ),
    (MaskMode::LearnedPrd.c_name(), MaskMode::LearnedPrd),
    (MaskMode::LearnedDst.c_name(), MaskMode::LearnedDst),
    (c"dst (landmark hull)", MaskMode::Dst),
    (MaskMode::Full.c_name(), MaskMode::Full),
];

const MASK_MODES_LABELS: [&CStr; 6] = choice_labels(&MASK_MODES);

const COLORS: [(&CStr, ColorTransferMode); 9] = named_choices![
    ColorTransferMode::Rct,
    ColorTransferMode::Lct,
    ColorTransferMode::Mkl,
    ColorTransferMode::Idt,
    ColorTransferMode::Sot,
    ColorTransferMode::Mix,
    ColorTransferMode::AvgColor,
    ColorTransferMode::MatchHist,
    ColorTransferMode::None,
];

const COLORS_LABELS: [&CStr; 9] = choice_labels(&COLORS);

const SHOW: [(&CStr, &str); 4] = [
    (c"Result", "result"),
    (c"Source", "source"),
    (c"Mask", "mask"),
    (c"Landmarks", "landmarks"),
];

const SHOW_LABELS: [&CStr; 4] = choice_labels(&SHOW);

pub(crate) const SWAP_PARAMS: &[ParamDef] = &[
    ParamDef {
        name: c"model",
        label: c"Model folder",
        hint: c"A model folder written by `faceswapd train` (unused when Trainer project is set)",
        kind: ParamKind::Str {
            default: c"",
            directory: true,
            secret: false,
        },
    },
    ParamDef {
        name: c"project",
        label: c"Trainer project",
        hint: c"Use the newest model that Faceswap Trainer trained in this project (letters, digits, - and _); leave empty to use the model folder",
        kind: ParamKind::Str {
            default: c"",
            directory: false,
            secret: false,
        },
    },
    ParamDef {
        name: c"target",
        label: c"Target face",
        hint: c"Which faces of the frame to replace",
        kind: ParamKind::Choice {
            options: &TARGETS_LABELS,
            default: 0,
        },
    },
    ParamDef {
        name: c"mergeMode",
        label: c"Merge mode",
        hint: c"How the face is blended (DeepFaceLab's merge modes)",
        kind: ParamKind::Choice {
            options: &MERGE_MODES_LABELS,
            default: 0,
        },
    },
    ParamDef {
        name: c"maskMode",
        label: c"Mask",
        hint: c"Which mask blends the face in",
        kind: ParamKind::Choice {
            options: &MASK_MODES_LABELS,
            default: 0,
        },
    },
    ParamDef {
        name: c"colorTransfer",
        label: c"Colour transfer",
        hint: c"Match the swapped face's colours to the frame",
        kind: ParamKind::Choice {
            options: &COLORS_LABELS,
            default: 0,
        },
    },
    ParamDef {
        name: c"erode",
        label: c"Mask erode",
        hint: c"Shrink (> 0) or grow (< 0) the mask",
        kind: ParamKind::Int {
            default: 0,
            min: -400,
            max: 400,
        },
    },
    ParamDef {
        name: c"blur",
        label: c"Mask blur",
        hint: c"Soften the mask edge",
        kind: ParamKind::Int {
            default: 0,
            min: 0,
            max: 400,
        },
    },
    ParamDef {
        name: c"faceScale",
        label: c"Face scale",
        hint: c"Grow or shrink the pasted face, percent",
        kind: ParamKind::Int {
            default: 0,
            min: -50,
            max: 50,
        },
    },
    ParamDef {
        name: c"opacity",
        label: c"Opacity",
        hint: c"Blend strength of the swapped face",
        kind: ParamKind::Double {
            default: 1.0,
            min: 0.0,
            max: 1.0,
        },
    },
    ParamDef {
        name: c"show",
        label: c"Show",
        hint: c"The swapped result or the untouched source",
        kind: ParamKind::Choice {
            options: &SHOW_LABELS,
            default: 0,
        },
    },
    DEADLINE_PARAM,
    DEVICE_PARAM,
    INSTANCE_ID_DEF,
];

fn swap_settings(
    s: &Suites,
    effect: OfxImageEffectHandle,
    time: f64,
    bottom_up: bool,
) -> Res<SwapSettings> {
    let target = choice_value(&TARGETS, param_int(s, effect, c"target", time)?);
    let project = param_string(s, effect, c"project")?.trim().to_string();
    Ok(SwapSettings {
        model_dir: param_string(s, effect, c"model")?,
        project: (!project.is_empty()).then_some(project),
        target,
        bottom_up,
        show: match choice_value(&SHOW, param_int(s, effect, c"show", time)?) {
            "mask" => SwapView::Mask,
            "landmarks" => SwapView::Landmarks,
            _ => SwapView::Result,
        },
        merge: ConvertSettings {
            mode: choice_value(&MERGE_MODES, param_int(s, effect, c"mergeMode", time)?),
            mask_mode: choice_value(&MASK_MODES, param_int(s, effect, c"maskMode", time)?),
            color: choice_value(&COLORS, param_int(s, effect, c"colorTransfer", time)?),
            erode: param_int(s, effect, c"erode", time)?,
            blur: param_int(s, effect, c"blur", time)?.max(0) as u32,
            face_scale: param_int(s, effect, c"faceScale", time)?,
            opacity: param_double(s, effect, c"opacity", time)? as f32,
            device: device_choice(s, effect, time)?,
            ..ConvertSettings::default()
        },
    })
}

pub(crate) fn render(
    s: &Suites,
    effect: OfxImageEffectHandle,
    in_args: OfxPropertySetHandle,
) -> Res<()> {
    with_images(
        s,
        effect,
        in_args,
        |image, dst, dst_stride, bottom_up, time| {
            let show = choice_value(&SHOW, param_int(s, effect, c"show", time)?);
            if show == "source" {
                crate::copy_rows(image, dst, dst_stride);
                return Ok(());
            }
            let op = FrameOp::Swap(Box::new(swap_settings(s, effect, time, bottom_up)?));
            match with_link(s, effect, time, |link| {
                link.render(image, dst, dst_stride, op)
            })? {
                RenderOutcome::Processed => set_message(s, effect, None),
                RenderOutcome::PassedThrough(why) => set_message(s, effect, Some(&why)),
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_choice_is_a_typed_target_and_unknown_indexes_are_the_first() {
        let got: Vec<SwapTarget> = (0..5).map(|i| choice_value(&TARGETS, i)).collect();
        assert_eq!(
            got,
            [
                SwapTarget::Largest,
                SwapTarget::All,
                SwapTarget::Index(0),
                SwapTarget::Index(1),
                SwapTarget::Index(2)
            ]
        );
        for bad in [-1, 5, std::ffi::c_int::MAX] {
            assert_eq!(choice_value(&TARGETS, bad), SwapTarget::Largest);
        }
        assert_eq!(TARGETS_LABELS[2], c"Face 1");
    }

    #[test]
    fn option_choices_are_the_shared_options_and_saved_indexes_keep_their_meaning() {
        // Index order is what hosts save in projects: these must never move.
        assert_eq!(choice_value(&MERGE_MODES, 0), MergeMode::Overlay);
        assert_eq!(choice_value(&MERGE_MODES, 5), MergeMode::Original);
        assert_eq!(choice_value(&MASK_MODES, 4), MaskMode::Dst);
        assert_eq!(choice_value(&COLORS, 8), ColorTransferMode::None);
        // Labels are the options' own names (the hull's label says what `dst` is).
        for (label, mode) in MERGE_MODES {
            assert_eq!(label.to_str().unwrap().parse::<MergeMode>(), Ok(mode));
        }
        for (label, mode) in COLORS {
            assert_eq!(
                label.to_str().unwrap().parse::<ColorTransferMode>(),
                Ok(mode)
            );
        }
        for (label, mode) in MASK_MODES.iter().filter(|(_, m)| *m != MaskMode::Dst) {
            assert_eq!(label.to_str().unwrap().parse::<MaskMode>(), Ok(*mode));
        }
    }
}
