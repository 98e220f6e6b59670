//! The OFX host layer: the host's suites fetched at load, property and parameter access,
//! parameter definitions, per-instance state (its daemon link, its background poller), image
//! access and persistent messages — a thin safe layer over OFX 1.5's C ABI (`openfx` sys
//! bindings) that both effects (swap, trainer) build on.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use faceswap_protocol::{PixelFormat, SocketPath};
use openfx::sys::generic::core::*;
use openfx::sys::generic::property::*;
use openfx::sys::image_effect_v1::image_effect::*;
use openfx::sys::image_effect_v1::message::*;
use openfx::sys::image_effect_v1::param::*;

use crate::{DaemonLink, HostImage};

/// Host suites fetched at load; `'static` because the host keeps them while the binary is loaded.
pub(crate) struct Suites {
    pub(crate) props: &'static OfxPropertySuiteV1,
    pub(crate) effect: &'static OfxImageEffectSuiteV1,
    pub(crate) params: &'static OfxParameterSuiteV1,
    pub(crate) message: Option<&'static OfxMessageSuiteV2>,
}

pub(crate) static HOST: AtomicPtr<OfxHost> = AtomicPtr::new(null_mut());

pub(crate) static SUITES: OnceLock<Suites> = OnceLock::new();

pub(crate) type Res<T> = Result<T, OfxStatus>;

pub(crate) const MISSING: OfxStatus = kOfxStatErrMissingHostFeature;

pub(crate) fn load() -> Res<()> {
    if SUITES.get().is_some() {
        return Ok(());
    }
    let host = HOST.load(Ordering::SeqCst);
    if host.is_null() {
        return Err(kOfxStatErrBadHandle);
    }
    // SAFETY: the host set this pointer through setHost and keeps it valid while we are loaded.
    let host = unsafe { &*host };
    let fetch = host.fetchSuite.ok_or(MISSING)?;
    let get = |name: &CStr, version: c_int| -> *const c_void {
        // SAFETY: fetchSuite is the host's function, called with its own host handle.
        unsafe { fetch(host.host, name.as_ptr(), version) }
    };
    let props = get(kOfxPropertySuite, 1) as *const OfxPropertySuiteV1;
    let effect = get(kOfxImageEffectSuite, 1) as *const OfxImageEffectSuiteV1;
    let params = get(kOfxParameterSuite, 1) as *const OfxParameterSuiteV1;
    let message = get(kOfxMessageSuite, 2) as *const OfxMessageSuiteV2;
    if props.is_null() || effect.is_null() || params.is_null() {
        return Err(MISSING);
    }
    // SAFETY: non-null suite pointers stay valid while the binary is loaded (OFX core).
    let suites = unsafe {
        Suites {
            props: &*props,
            effect: &*effect,
            params: &*params,
            message: message.as_ref(),
        }
    };
    let _ = SUITES.set(suites);
    Ok(())
}

pub(crate) fn suites() -> Res<&'static Suites> {
    SUITES.get().ok_or(MISSING)
}

pub(crate) fn ok(status: OfxStatus) -> Res<()> {
    if status == kOfxStatOK {
        Ok(())
    } else {
        Err(status)
    }
}

// --- properties ---

pub(crate) fn set_str(
    s: &Suites,
    p: OfxPropertySetHandle,
    name: &CStr,
    index: c_int,
    v: &CStr,
) -> Res<()> {
    let f = s.props.propSetString.ok_or(MISSING)?;
    // SAFETY: a property set handle from the host, NUL-terminated strings that outlive the call.
    ok(unsafe { f(p, name.as_ptr(), index, v.as_ptr()) })
}

pub(crate) fn set_int(
    s: &Suites,
    p: OfxPropertySetHandle,
    name: &CStr,
    index: c_int,
    v: c_int,
) -> Res<()> {
    let f = s.props.propSetInt.ok_or(MISSING)?;
    // SAFETY: as set_str.
    ok(unsafe { f(p, name.as_ptr(), index, v) })
}

pub(crate) fn set_double(
    s: &Suites,
    p: OfxPropertySetHandle,
    name: &CStr,
    index: c_int,
    v: f64,
) -> Res<()> {
    let f = s.props.propSetDouble.ok_or(MISSING)?;
    // SAFETY: as set_str.
    ok(unsafe { f(p, name.as_ptr(), index, v) })
}

pub(crate) fn set_ptr(s: &Suites, p: OfxPropertySetHandle, name: &CStr, v: *mut c_void) -> Res<()> {
    let f = s.props.propSetPointer.ok_or(MISSING)?;
    // SAFETY: as set_str.
    ok(unsafe { f(p, name.as_ptr(), 0, v) })
}

pub(crate) fn get_ptr(s: &Suites, p: OfxPropertySetHandle, name: &CStr) -> Res<*mut c_void> {
    let f = s.props.propGetPointer.ok_or(MISSING)?;
    let mut v = null_mut();
    // SAFETY: the host writes one pointer into `v`.
    ok(unsafe { f(p, name.as_ptr(), 0, &mut v) })?;
    Ok(v)
}

pub(crate) fn get_int(
    s: &Suites,
    p: OfxPropertySetHandle,
    name: &CStr,
    index: c_int,
) -> Res<c_int> {
    let f = s.props.propGetInt.ok_or(MISSING)?;
    let mut v = 0;
    // SAFETY: the host writes one int into `v`.
    ok(unsafe { f(p, name.as_ptr(), index, &mut v) })?;
    Ok(v)
}

pub(crate) fn get_double(s: &Suites, p: OfxPropertySetHandle, name: &CStr) -> Res<f64> {
    let f = s.props.propGetDouble.ok_or(MISSING)?;
    let mut v = 0.0;
    // SAFETY: the host writes one double into `v`.
    ok(unsafe { f(p, name.as_ptr(), 0, &mut v) })?;
    Ok(v)
}

pub(crate) fn get_str(s: &Suites, p: OfxPropertySetHandle, name: &CStr) -> Res<String> {
    let f = s.props.propGetString.ok_or(MISSING)?;
    let mut v: *mut c_char = null_mut();
    // SAFETY: the host writes a pointer to a NUL-terminated string it owns.
    ok(unsafe { f(p, name.as_ptr(), 0, &mut v) })?;
    if v.is_null() {
        return Ok(String::new());
    }
    // SAFETY: non-null, NUL-terminated, valid until the next call on this property.
    Ok(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

pub(crate) fn effect_props(s: &Suites, effect: OfxImageEffectHandle) -> Res<OfxPropertySetHandle> {
    let f = s.effect.getPropertySet.ok_or(MISSING)?;
    let mut p = null_mut();
    // SAFETY: an effect handle from the host.
    ok(unsafe { f(effect, &mut p) })?;
    Ok(p)
}

pub(crate) fn param_set(s: &Suites, effect: OfxImageEffectHandle) -> Res<OfxParamSetHandle> {
    let f = s.effect.getParamSet.ok_or(MISSING)?;
    let mut p = null_mut();
    // SAFETY: an effect handle from the host.
    ok(unsafe { f(effect, &mut p) })?;
    Ok(p)
}

// --- description ---

/// A parameter of an effect.
pub(crate) enum ParamKind {
    Str {
        default: &'static CStr,
        directory: bool,
        secret: bool,
    },
    Choice {
        /// The labels the host lists, in index order.
        options: &'static [&'static CStr],
        default: c_int,
    },
    Int {
        default: c_int,
        min: c_int,
        max: c_int,
    },
    Double {
        default: f64,
        min: f64,
        max: f64,
    },
    /// A read-only text line (status).
    Label,
    /// A hidden double the plug-in bumps to make the host re-render.
    Hidden,
    /// A push button.
    Button,
}

/// One parameter's definition.
pub(crate) struct ParamDef {
    pub(crate) name: &'static CStr,
    pub(crate) label: &'static CStr,
    pub(crate) hint: &'static CStr,
    pub(crate) kind: ParamKind,
}

/// Where the daemon runs this instance's models ("" = its `compute.device`).
pub(crate) const DEVICES: [(&CStr, &str); 6] = [
    (c"Daemon setting (compute.device)", ""),
    (c"Best GPU (auto)", "auto"),
    (c"CPU", "cpu"),
    (c"NVIDIA CUDA", "cuda"),
    (c"Vulkan", "vulkan"),
    (c"wgpu (Vulkan / Metal / DirectX 12)", "wgpu"),
];

pub(crate) const DEVICES_LABELS: [&CStr; 6] = choice_labels(&DEVICES);

/// The Device choice both effects carry: a job's or render's `--device`.
pub(crate) const DEVICE_PARAM: ParamDef = ParamDef {
    name: c"device",
    label: c"Device",
    hint: c"Where faceswapd runs this effect's models; an unusable device is reported, not swapped for another",
    kind: ParamKind::Choice {
        options: &DEVICES_LABELS,
        default: 0,
    },
};

/// The device the Device param names, `None` for the daemon's setting.
pub(crate) fn device_choice(
    s: &Suites,
    effect: OfxImageEffectHandle,
    time: f64,
) -> Res<Option<String>> {
    let chosen = choice_value(&DEVICES, param_int(s, effect, c"device", time)?);
    Ok((!chosen.is_empty()).then(|| chosen.to_string()))
}

/// Hidden: minted at creation, keys the instance's project and jobs (hosts keep separate UI and
/// render instances; both see the same value through the saved param).
pub const INSTANCE_ID_PARAM: &CStr = c"instanceId";

/// How long a render waits for the daemon (both effects).
pub(crate) const DEADLINE_PARAM: ParamDef = ParamDef {
    name: c"deadlineMs",
    label: c"Daemon deadline (ms)",
    hint: c"How long a render waits for faceswapd before showing the source",
    kind: ParamKind::Int {
        default: 10_000,
        min: 100,
        max: 600_000,
    },
};

/// The hidden instance id (both effects).
pub(crate) const INSTANCE_ID_DEF: ParamDef = ParamDef {
    name: INSTANCE_ID_PARAM,
    label: c"Instance id",
    hint: c"Keys this effect's project and jobs in faceswapd",
    kind: ParamKind::Str {
        default: c"",
        directory: false,
        secret: true,
    },
};

// --- instances ---

/// One effect instance's state: its link to the daemon (renders of one instance share it).
pub(crate) struct Instance {
    pub(crate) link: Mutex<Option<DaemonLink>>,
    /// The trainer's status poller, told to stop when the instance goes.
    pub(crate) poller: Mutex<Option<Poller>>,
    /// The trainer's status line and checkpoint step as last set on this instance's params.
    pub(crate) shown: Mutex<Option<crate::status::StatusLine>>,
}

pub(crate) fn param(s: &Suites, effect: OfxImageEffectHandle, name: &CStr) -> Res<OfxParamHandle> {
    let set = param_set(s, effect)?;
    let f = s.params.paramGetHandle.ok_or(MISSING)?;
    let mut h = null_mut();
    // SAFETY: the host's param set and a NUL-terminated name; no property set wanted.
    ok(unsafe { f(set, name.as_ptr(), &mut h, null_mut()) })?;
    Ok(h)
}

pub(crate) fn param_int(
    s: &Suites,
    effect: OfxImageEffectHandle,
    name: &CStr,
    time: f64,
) -> Res<c_int> {
    let h = param(s, effect, name)?;
    let f = s.params.paramGetValueAtTime.ok_or(MISSING)?;
    let mut v: c_int = 0;
    // SAFETY: integer and choice params take one `int*` after the time.
    ok(unsafe { f(h, time, &mut v as *mut c_int) })?;
    Ok(v)
}

pub(crate) fn param_double(
    s: &Suites,
    effect: OfxImageEffectHandle,
    name: &CStr,
    time: f64,
) -> Res<f64> {
    let h = param(s, effect, name)?;
    let f = s.params.paramGetValueAtTime.ok_or(MISSING)?;
    let mut v: f64 = 0.0;
    // SAFETY: double params take one `double*` after the time.
    ok(unsafe { f(h, time, &mut v as *mut f64) })?;
    Ok(v)
}

pub(crate) fn param_string(s: &Suites, effect: OfxImageEffectHandle, name: &CStr) -> Res<String> {
    let h = param(s, effect, name)?;
    let f = s.params.paramGetValue.ok_or(MISSING)?;
    let mut v: *const c_char = null();
    // SAFETY: string params take one `const char**`; the host owns the string.
    ok(unsafe { f(h, &mut v as *mut *const c_char) })?;
    if v.is_null() {
        return Ok(String::new());
    }
    // SAFETY: non-null and NUL-terminated, valid until the next call on this param.
    Ok(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

/// A new instance id: time, process and a counter (unique enough to key a project).
pub(crate) fn mint_instance_id() -> CString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    CString::new(format!("{nanos:x}-{:x}-{n:x}", std::process::id())).unwrap_or_default()
}

pub(crate) fn create_instance(s: &Suites, effect: OfxImageEffectHandle) -> Res<()> {
    if param_string(s, effect, INSTANCE_ID_PARAM)?.is_empty() {
        let id = mint_instance_id();
        let h = param(s, effect, INSTANCE_ID_PARAM)?;
        let f = s.params.paramSetValue.ok_or(MISSING)?;
        // SAFETY: string params take one `const char*`; the host copies it.
        ok(unsafe { f(h, id.as_ptr()) })?;
    }
    let instance = Box::new(Instance {
        link: Mutex::new(None),
        poller: Mutex::new(None),
        shown: Mutex::new(None),
    });
    set_ptr(
        s,
        effect_props(s, effect)?,
        kOfxPropInstanceData,
        Box::into_raw(instance).cast(),
    )
}

/// The instance data created for `effect`.
pub(crate) fn instance<'a>(s: &Suites, effect: OfxImageEffectHandle) -> Res<&'a Instance> {
    let p = get_ptr(s, effect_props(s, effect)?, kOfxPropInstanceData)?.cast::<Instance>();
    // SAFETY: set in create_instance, freed only in destroy_instance, which the host never runs
    // while another action of the same instance is in flight.
    unsafe { p.as_ref() }.ok_or(kOfxStatErrBadHandle)
}

/// Sets an integer param (only from actions where OFX allows it: InstanceChanged, …).
pub(crate) fn set_param_int(
    s: &Suites,
    effect: OfxImageEffectHandle,
    name: &CStr,
    v: c_int,
) -> Res<()> {
    let h = param(s, effect, name)?;
    let f = s.params.paramSetValue.ok_or(MISSING)?;
    // SAFETY: integer params take one `int` after the handle.
    ok(unsafe { f(h, v) })
}

/// Sets a string param (only from actions where the host allows it: never from a thread).
pub(crate) fn set_param_string(
    s: &Suites,
    effect: OfxImageEffectHandle,
    name: &CStr,
    v: &str,
) -> Res<()> {
    let h = param(s, effect, name)?;
    let f = s.params.paramSetValue.ok_or(MISSING)?;
    let v = CString::new(v.replace('\0', " ")).map_err(|_| kOfxStatErrValue)?;
    // SAFETY: string params take one `const char*`; the host copies it.
    ok(unsafe { f(h, v.as_ptr()) })
}

/// Sets a double param (only from actions where the host allows it: never from a thread).
pub(crate) fn set_param_double(
    s: &Suites,
    effect: OfxImageEffectHandle,
    name: &CStr,
    v: f64,
) -> Res<()> {
    let h = param(s, effect, name)?;
    let f = s.params.paramSetValue.ok_or(MISSING)?;
    // SAFETY: double params take one `double`.
    ok(unsafe { f(h, v) })
}

pub(crate) fn destroy_instance(s: &Suites, effect: OfxImageEffectHandle) -> Res<()> {
    let props = effect_props(s, effect)?;
    let p = get_ptr(s, props, kOfxPropInstanceData)?;
    if !p.is_null() {
        // SAFETY: the pointer is the Box we leaked in create_instance, freed once: cleared next.
        drop(unsafe { Box::from_raw(p.cast::<Instance>()) });
        set_ptr(s, props, kOfxPropInstanceData, null_mut())?;
    }
    Ok(())
}

// --- render ---

/// A host image's pixels as rows in memory order.
pub(crate) struct ImageView {
    pub(crate) base: *mut u8,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: usize,
    pub(crate) format: PixelFormat,
    /// Memory order is bottom row first (positive rowbytes, OFX's default).
    pub(crate) bottom_up: bool,
    pub(crate) bounds: [c_int; 4],
}

pub(crate) fn image_view(s: &Suites, img: OfxPropertySetHandle) -> Res<ImageView> {
    let data = get_ptr(s, img, kOfxImagePropData)?.cast::<u8>();
    let row_bytes = get_int(s, img, kOfxImagePropRowBytes, 0)?;
    let mut bounds = [0; 4];
    for (i, b) in bounds.iter_mut().enumerate() {
        *b = get_int(s, img, kOfxImagePropBounds, i as c_int)?;
    }
    let depth = get_str(s, img, kOfxImageEffectPropPixelDepth)?;
    let components = get_str(s, img, kOfxImageEffectPropComponents)?;
    if components.as_bytes() != kOfxImageComponentRGBA.to_bytes() {
        return Err(kOfxStatErrUnsupported);
    }
    let format = match depth.as_bytes() {
        d if d == kOfxBitDepthByte.to_bytes() => PixelFormat::Rgba8,
        d if d == kOfxBitDepthShort.to_bytes() => PixelFormat::Rgba16,
        d if d == kOfxBitDepthHalf.to_bytes() => PixelFormat::RgbaF16,
        d if d == kOfxBitDepthFloat.to_bytes() => PixelFormat::RgbaF32,
        _ => return Err(kOfxStatErrUnsupported),
    };
    let width = (bounds[2] - bounds[0]).max(0) as u32;
    let height = (bounds[3] - bounds[1]).max(0) as u32;
    let stride = row_bytes.unsigned_abs() as usize;
    if data.is_null() || stride < width as usize * format.bytes_per_pixel() {
        return Err(kOfxStatErrBadHandle);
    }
    // Negative rowbytes: the data pointer is still the bottom row, rows above sit lower in
    // memory, so memory order from the top row is top-down.
    let base = if row_bytes < 0 && height > 0 {
        data.wrapping_sub(stride * (height as usize - 1))
    } else {
        data
    };
    Ok(ImageView {
        base,
        width,
        height,
        stride,
        format,
        bottom_up: row_bytes >= 0,
        bounds,
    })
}

pub(crate) fn clip_image(
    s: &Suites,
    effect: OfxImageEffectHandle,
    name: &CStr,
    time: f64,
) -> Res<OfxPropertySetHandle> {
    let get_clip = s.effect.clipGetHandle.ok_or(MISSING)?;
    let get_image = s.effect.clipGetImage.ok_or(MISSING)?;
    let mut clip = null_mut();
    // SAFETY: an effect handle and a clip name defined in describe_in_context.
    ok(unsafe { get_clip(effect, name.as_ptr(), &mut clip, null_mut()) })?;
    let mut img = null_mut();
    // SAFETY: a clip handle from the host; a null region asks for the whole image.
    ok(unsafe { get_image(clip, time, null(), &mut img) })?;
    // Resolve answers OK with no image for a clip that is not connected.
    if img.is_null() {
        return Err(kOfxStatFailed);
    }
    Ok(img)
}

/// Releases a clip image when dropped (every path out of render).
pub(crate) struct Held<'a>(pub(crate) &'a Suites, pub(crate) OfxPropertySetHandle);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0.effect.clipReleaseImage {
            // SAFETY: an image the host gave us, released once.
            unsafe { f(self.1) };
        }
    }
}

/// A choice table whose labels are the options' own names (each name spelled once, in
/// `faceswap_options`).
macro_rules! named_choices {
    ($($v:expr),+ $(,)?) => {
        [$(($v.c_name(), $v)),+]
    };
}
pub(crate) use named_choices;

/// The value of choice `index` in a table; an index the table lacks (a project saved by a
/// newer plug-in) is its first entry.
pub(crate) fn choice_value<T: Copy, const N: usize>(options: &[(&CStr, T); N], index: c_int) -> T {
    const { assert!(N > 0, "a choice table is never empty") };
    let i = usize::try_from(index).ok().filter(|&i| i < N).unwrap_or(0);
    options[i].1
}

/// The labels of a choice table, in index order, for the param's descriptor.
pub(crate) const fn choice_labels<T: Copy, const N: usize>(
    table: &[(&'static CStr, T); N],
) -> [&'static CStr; N] {
    let mut labels = [c""; N];
    let mut i = 0;
    while i < N {
        labels[i] = table[i].0;
        i += 1;
    }
    labels
}

pub(crate) fn set_message(s: &Suites, effect: OfxImageEffectHandle, text: Option<&str>) {
    let Some(m) = s.message else {
        return;
    };
    match text {
        Some(t) => {
            if let (Some(f), Ok(t)) = (m.setPersistentMessage, CString::new(crate::one_line(t))) {
                // SAFETY: "%s" with one NUL-terminated string argument.
                unsafe {
                    f(
                        effect.cast(),
                        kOfxMessageError.as_ptr(),
                        c"".as_ptr(),
                        c"%s".as_ptr(),
                        t.as_ptr(),
                    )
                };
            }
        }
        None => {
            if let Some(f) = m.clearPersistentMessage {
                // SAFETY: the effect handle the host gave this action.
                unsafe { f(effect.cast()) };
            }
        }
    }
}

/// The render action's source and output images, mapped: `body(source, output bytes, output
/// stride, bottom_up, time)` runs while both are held; they are released after it.
pub(crate) fn with_images(
    s: &Suites,
    effect: OfxImageEffectHandle,
    in_args: OfxPropertySetHandle,
    body: impl FnOnce(&HostImage<'_>, &mut [u8], usize, bool, f64) -> Res<()>,
) -> Res<()> {
    let time = get_double(s, in_args, kOfxPropTime)?;
    let src = Held(
        s,
        clip_image(s, effect, kOfxImageEffectSimpleSourceClipName, time)?,
    );
    let dst = Held(
        s,
        clip_image(s, effect, kOfxImageEffectOutputClipName, time)?,
    );
    let (sv, dv) = (image_view(s, src.1)?, image_view(s, dst.1)?);
    if sv.bounds != dv.bounds || sv.format != dv.format || sv.bottom_up != dv.bottom_up {
        return Err(kOfxStatErrUnsupported);
    }
    if sv.height == 0 || sv.width == 0 {
        return Ok(());
    }
    let row = sv.width as usize * sv.format.bytes_per_pixel();
    let len = sv.stride * (sv.height as usize - 1) + row;
    let dst_len = dv.stride * (dv.height as usize - 1) + row;
    // SAFETY: the host's image buffers hold `height` rows `stride` apart from `base`; the
    // source is only read, the output only written, and they are distinct images.
    let (src_bytes, dst_bytes) = unsafe {
        (
            std::slice::from_raw_parts(sv.base as *const u8, len),
            std::slice::from_raw_parts_mut(dv.base, dst_len),
        )
    };
    let image = HostImage {
        width: sv.width,
        height: sv.height,
        stride: sv.stride,
        format: sv.format,
        data: src_bytes,
    };
    body(&image, dst_bytes, dv.stride, sv.bottom_up, time)
}

/// The instance's daemon link (made on first use) with its deadline set from the params.
pub(crate) fn with_link<T>(
    s: &Suites,
    effect: OfxImageEffectHandle,
    time: f64,
    body: impl FnOnce(&mut DaemonLink) -> T,
) -> Res<T> {
    let deadline =
        Duration::from_millis(param_int(s, effect, c"deadlineMs", time)?.max(100) as u64);
    let instance = instance(s, effect)?;
    let mut guard = instance.link.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let socket = SocketPath::resolve().map_err(|_| kOfxStatFailed)?;
        *guard = Some(DaemonLink::new(socket, deadline).with_autostart(true));
    }
    let link = guard.as_mut().ok_or(kOfxStatFailed)?;
    link.set_deadline(deadline);
    Ok(body(link))
}

/// The trainer's status poller of one instance: told to stop when dropped, not joined (it
/// touches no host object and ends after its current call; [`crate::background`]).
pub(crate) struct Poller {
    pub(crate) stop: std::sync::Arc<crate::background::StopSignal>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.stop();
    }
}
