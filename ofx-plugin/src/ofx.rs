//! The OpenFX entry points of both effects ("Faceswap" and "Faceswap Trainer", Filter and
//! General contexts): plug-in discovery, the action dispatch and the effects' description.
//! Every entry point runs inside `catch_unwind`: a failure becomes an OFX error status, never
//! an unwind into the host.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{null, null_mut};
use std::sync::atomic::Ordering;

use openfx::sys::generic::core::*;
use openfx::sys::image_effect_v1::image_effect::*;
use openfx::sys::image_effect_v1::param::*;

use crate::host::*;

/// The swap effect's identifier (reverse domain, as OFX asks).
pub const SWAP_EFFECT_ID: &CStr = c"org.faceswappp.Faceswap";

static SWAP_PLUGIN: OfxPlugin = OfxPlugin {
    pluginApi: kOfxImageEffectPluginApi.as_ptr(),
    apiVersion: 1,
    pluginIdentifier: SWAP_EFFECT_ID.as_ptr(),
    pluginVersionMajor: 0,
    pluginVersionMinor: 1,
    setHost: Some(set_host),
    mainEntry: Some(swap_main_entry),
};

/// The trainer effect's identifier.
pub const TRAINER_EFFECT_ID: &CStr = c"org.faceswappp.FaceswapTrainer";

static TRAINER_PLUGIN: OfxPlugin = OfxPlugin {
    pluginApi: kOfxImageEffectPluginApi.as_ptr(),
    apiVersion: 1,
    pluginIdentifier: TRAINER_EFFECT_ID.as_ptr(),
    pluginVersionMajor: 0,
    pluginVersionMinor: 1,
    setHost: Some(set_host),
    mainEntry: Some(trainer_main_entry),
};

/// OFX: how many plug-ins this binary holds.
#[unsafe(no_mangle)]
pub extern "C" fn OfxGetNumberOfPlugins() -> c_int {
    2
}

/// OFX: the n-th plug-in.
#[unsafe(no_mangle)]
pub extern "C" fn OfxGetPlugin(nth: c_int) -> *const OfxPlugin {
    match nth {
        0 => &SWAP_PLUGIN,
        1 => &TRAINER_PLUGIN,
        _ => null(),
    }
}

/// Which of the two effects an action is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Swap,
    Trainer,
}

unsafe extern "C" fn set_host(host: *mut OfxHost) {
    HOST.store(host, Ordering::SeqCst);
}

unsafe extern "C" fn swap_main_entry(
    action: *const c_char,
    handle: *const c_void,
    in_args: OfxPropertySetHandle,
    out_args: OfxPropertySetHandle,
) -> OfxStatus {
    main_entry(Kind::Swap, action, handle, in_args, out_args)
}

unsafe extern "C" fn trainer_main_entry(
    action: *const c_char,
    handle: *const c_void,
    in_args: OfxPropertySetHandle,
    out_args: OfxPropertySetHandle,
) -> OfxStatus {
    main_entry(Kind::Trainer, action, handle, in_args, out_args)
}

fn main_entry(
    kind: Kind,
    action: *const c_char,
    handle: *const c_void,
    in_args: OfxPropertySetHandle,
    out_args: OfxPropertySetHandle,
) -> OfxStatus {
    // A panic must never unwind into the host: it becomes kOfxStatErrFatal.
    catch_unwind(AssertUnwindSafe(|| {
        if action.is_null() {
            return kOfxStatErrBadHandle;
        }
        // SAFETY: the host passes a NUL-terminated action name.
        let action = unsafe { CStr::from_ptr(action) };
        let effect = handle as OfxImageEffectHandle;
        match dispatch(kind, action, effect, in_args, out_args) {
            Ok(s) | Err(s) => s,
        }
    }))
    .unwrap_or(kOfxStatErrFatal)
}

fn dispatch(
    kind: Kind,
    action: &CStr,
    effect: OfxImageEffectHandle,
    in_args: OfxPropertySetHandle,
    _out_args: OfxPropertySetHandle,
) -> Res<OfxStatus> {
    if action == kOfxActionLoad {
        load()?;
        return Ok(kOfxStatOK);
    }
    #[cfg(feature = "test-hooks")]
    if action == FORCED_FAILURE_ACTION {
        // Lets the tests prove a panic inside an action never crosses the C ABI.
        panic!("forced failure requested by the host");
    }
    if action == kOfxActionUnload {
        crate::background::settle_at_unload();
        return Ok(kOfxStatOK);
    }
    let s = suites()?;
    if action == kOfxActionDescribe {
        describe(s, effect, kind)?;
    } else if action == kOfxImageEffectActionDescribeInContext {
        describe_in_context(s, effect, kind)?;
    } else if action == kOfxActionCreateInstance {
        create_instance(s, effect)?;
    } else if action == kOfxActionDestroyInstance {
        destroy_instance(s, effect)?;
    } else if action == kOfxImageEffectActionRender {
        match kind {
            Kind::Swap => crate::swap::render(s, effect, in_args)?,
            Kind::Trainer => crate::trainer::render(s, effect, in_args)?,
        }
    } else if action == kOfxActionInstanceChanged && kind == Kind::Trainer {
        crate::trainer::instance_changed(s, effect, in_args)?;
    } else {
        return Ok(kOfxStatReplyDefault);
    }
    Ok(kOfxStatOK)
}

/// An action name no host sends; with the `test-hooks` feature (test bundles only) it makes
/// the action panic, elsewhere it gets the default reply like any unknown action.
pub const FORCED_FAILURE_ACTION: &CStr = c"org.faceswappp.TestForcedPanic";

fn describe(s: &Suites, effect: OfxImageEffectHandle, kind: Kind) -> Res<()> {
    let p = effect_props(s, effect)?;
    let label = match kind {
        Kind::Swap => c"Faceswap",
        Kind::Trainer => c"Faceswap Trainer",
    };
    set_str(s, p, kOfxPropLabel, 0, label)?;
    set_str(s, p, kOfxImageEffectPluginPropGrouping, 0, c"Faceswap++")?;
    set_str(
        s,
        p,
        kOfxImageEffectPropSupportedContexts,
        0,
        kOfxImageEffectContextFilter,
    )?;
    set_str(
        s,
        p,
        kOfxImageEffectPropSupportedContexts,
        1,
        kOfxImageEffectContextGeneral,
    )?;
    for (i, d) in [
        kOfxBitDepthByte,
        kOfxBitDepthShort,
        kOfxBitDepthHalf,
        kOfxBitDepthFloat,
    ]
    .iter()
    .enumerate()
    {
        set_str(s, p, kOfxImageEffectPropSupportedPixelDepths, i as c_int, d)?;
    }
    set_int(s, p, kOfxImageEffectPropSupportsTiles, 0, 0)?;
    set_int(s, p, kOfxImageEffectPropSupportsMultiResolution, 0, 0)?;
    set_int(s, p, kOfxImageEffectPropTemporalClipAccess, 0, 0)?;
    set_str(
        s,
        p,
        kOfxImageEffectPluginRenderThreadSafety,
        0,
        kOfxImageEffectRenderFullySafe,
    )?;
    set_int(s, p, kOfxImageEffectPluginPropHostFrameThreading, 0, 0)?;
    Ok(())
}

fn define_clip(s: &Suites, effect: OfxImageEffectHandle, name: &CStr) -> Res<()> {
    let f = s.effect.clipDefine.ok_or(MISSING)?;
    let mut p = null_mut();
    // SAFETY: an effect handle from the host and a NUL-terminated name.
    ok(unsafe { f(effect, name.as_ptr(), &mut p) })?;
    set_str(
        s,
        p,
        kOfxImageEffectPropSupportedComponents,
        0,
        kOfxImageComponentRGBA,
    )
}

fn describe_in_context(s: &Suites, effect: OfxImageEffectHandle, kind: Kind) -> Res<()> {
    define_clip(s, effect, kOfxImageEffectSimpleSourceClipName)?;
    define_clip(s, effect, kOfxImageEffectOutputClipName)?;
    let set = param_set(s, effect)?;
    let define = s.params.paramDefine.ok_or(MISSING)?;
    let params = match kind {
        Kind::Swap => crate::swap::SWAP_PARAMS,
        Kind::Trainer => crate::trainer::TRAINER_PARAMS,
    };
    for d in params {
        let kind = match d.kind {
            ParamKind::Str { .. } | ParamKind::Label => kOfxParamTypeString,
            ParamKind::Choice { .. } => kOfxParamTypeChoice,
            ParamKind::Int { .. } => kOfxParamTypeInteger,
            ParamKind::Double { .. } | ParamKind::Hidden => kOfxParamTypeDouble,
            ParamKind::Button => kOfxParamTypePushButton,
        };
        let mut p = null_mut();
        // SAFETY: the host's param set and NUL-terminated type and name.
        ok(unsafe { define(set, kind.as_ptr(), d.name.as_ptr(), &mut p) })?;
        set_str(s, p, kOfxPropLabel, 0, d.label)?;
        set_str(s, p, kOfxParamPropHint, 0, d.hint)?;
        match d.kind {
            ParamKind::Str {
                default,
                directory,
                secret,
            } => {
                set_str(s, p, kOfxParamPropDefault, 0, default)?;
                if directory {
                    set_str(
                        s,
                        p,
                        kOfxParamPropStringMode,
                        0,
                        kOfxParamStringIsDirectoryPath,
                    )?;
                }
                if secret {
                    set_int(s, p, kOfxParamPropSecret, 0, 1)?;
                }
            }
            ParamKind::Choice { options, default } => {
                for (i, label) in options.iter().enumerate() {
                    set_str(s, p, kOfxParamPropChoiceOption, i as c_int, label)?;
                }
                set_int(s, p, kOfxParamPropDefault, 0, default)?;
                set_int(s, p, kOfxParamPropAnimates, 0, 0)?;
            }
            ParamKind::Int { default, min, max } => {
                set_int(s, p, kOfxParamPropDefault, 0, default)?;
                // Resolve clamps to (0, 0) unless both ranges are set.
                for name in [kOfxParamPropMin, kOfxParamPropDisplayMin] {
                    set_int(s, p, name, 0, min)?;
                }
                for name in [kOfxParamPropMax, kOfxParamPropDisplayMax] {
                    set_int(s, p, name, 0, max)?;
                }
            }
            ParamKind::Double { default, min, max } => {
                set_double(s, p, kOfxParamPropDefault, 0, default)?;
                for name in [kOfxParamPropMin, kOfxParamPropDisplayMin] {
                    set_double(s, p, name, 0, min)?;
                }
                for name in [kOfxParamPropMax, kOfxParamPropDisplayMax] {
                    set_double(s, p, name, 0, max)?;
                }
            }
            ParamKind::Label => {
                set_str(s, p, kOfxParamPropDefault, 0, c"")?;
                set_str(s, p, kOfxParamPropStringMode, 0, kOfxParamStringIsLabel)?;
                set_int(s, p, kOfxParamPropEvaluateOnChange, 0, 0)?;
            }
            ParamKind::Hidden => {
                // Set to the newest checkpoint's step: a changed value makes the host re-render.
                set_double(s, p, kOfxParamPropDefault, 0, 0.0)?;
                // Resolve clamps doubles without ranges to (-1, 1): steps would stick at 1.
                for name in [kOfxParamPropMin, kOfxParamPropDisplayMin] {
                    set_double(s, p, name, 0, 0.0)?;
                }
                for name in [kOfxParamPropMax, kOfxParamPropDisplayMax] {
                    set_double(s, p, name, 0, 1e15)?;
                }
                set_int(s, p, kOfxParamPropSecret, 0, 1)?;
                set_int(s, p, kOfxParamPropAnimates, 0, 0)?;
            }
            ParamKind::Button => {}
        }
    }
    Ok(())
}
