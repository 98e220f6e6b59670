//! A small OpenFX host for tests: it finds `*.ofx.bundle`s on `OFX_PLUGIN_PATH` the way Natron
//! and Resolve do, loads the binary, runs Load / Describe / DescribeInContext, creates
//! instances and renders frames through them. It implements the property, image-effect,
//! parameter and message suites (the C-variadic functions in `ofx_shim.c`). Params do not
//! animate; clips hold whatever image the test hands them.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use openfx::sys::generic::core::*;
use openfx::sys::generic::property::*;
use openfx::sys::image_effect_v1::image_effect::*;
use openfx::sys::image_effect_v1::memory::*;
use openfx::sys::image_effect_v1::message::*;
use openfx::sys::image_effect_v1::multi_thread::*;
use openfx::sys::image_effect_v1::param::*;
use openfx::sys::image_effect_v1::progress::*;

/// One property value.
#[derive(Debug, Clone)]
enum Value {
    Str(CString),
    Int(c_int),
    Double(f64),
    Ptr(usize),
}

/// A property set: name → values by index.
#[derive(Debug, Default)]
pub struct PropertySet {
    values: Mutex<HashMap<String, Vec<Value>>>,
}

impl PropertySet {
    fn set(&self, name: &str, index: usize, v: Value) {
        let mut m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(name.to_string()).or_default();
        if e.len() <= index {
            e.resize(index + 1, v.clone());
        }
        e[index] = v;
    }

    fn get(&self, name: &str, index: usize) -> Option<Value> {
        let m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        m.get(name).and_then(|v| v.get(index)).cloned()
    }

    /// A string value, for the test's assertions.
    pub fn string(&self, name: &CStr, index: usize) -> Option<String> {
        match self.get(&name.to_string_lossy(), index)? {
            Value::Str(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        }
    }

    /// An integer value.
    pub fn int(&self, name: &CStr, index: usize) -> Option<c_int> {
        match self.get(&name.to_string_lossy(), index)? {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    /// How many values a property has.
    pub fn dimension(&self, name: &CStr) -> usize {
        let m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&*name.to_string_lossy()).map_or(0, |v| v.len())
    }

    fn set_str(&self, name: &CStr, index: usize, v: &CStr) {
        self.set(&name.to_string_lossy(), index, Value::Str(v.to_owned()));
    }

    fn set_int(&self, name: &CStr, index: usize, v: c_int) {
        self.set(&name.to_string_lossy(), index, Value::Int(v));
    }

    fn set_double(&self, name: &CStr, index: usize, v: f64) {
        self.set(&name.to_string_lossy(), index, Value::Double(v));
    }

    fn set_ptr(&self, name: &CStr, v: *mut c_void) {
        self.set(&name.to_string_lossy(), 0, Value::Ptr(v as usize));
    }

    fn handle(&self) -> OfxPropertySetHandle {
        self as *const PropertySet as OfxPropertySetHandle
    }
}

/// Where an instance stands in its destruction, and the host calls on its objects made too
/// late: from another thread once its destroy action began, or from any thread after it ended.
#[derive(Debug, Default)]
pub struct Lifecycle {
    state: Mutex<Destroy>,
    late: Mutex<Vec<String>>,
}

#[derive(Debug, Default)]
enum Destroy {
    #[default]
    Alive,
    Running(std::thread::ThreadId),
    Done,
}

impl Lifecycle {
    fn note(&self, call: impl FnOnce() -> String) {
        let late = match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            Destroy::Alive => false,
            Destroy::Running(t) => *t != std::thread::current().id(),
            Destroy::Done => true,
        };
        if late {
            self.late
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(call());
        }
    }

    fn set(&self, state: Destroy) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// The host calls recorded as too late (see the type's doc).
    pub fn late_calls(&self) -> Vec<String> {
        self.late.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A parameter: its definition properties and current value.
#[derive(Debug)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// `OfxParamType…`.
    pub kind: String,
    /// Definition properties (label, default, range, options…).
    pub props: PropertySet,
    value: Mutex<Option<Value>>,
    life: Arc<Lifecycle>,
}

/// A set of parameters.
#[derive(Debug, Default)]
pub struct ParamSet {
    // Boxed: a param's handle is its address, which must not move when the list grows.
    #[allow(clippy::vec_box)]
    params: Mutex<Vec<Box<Param>>>,
    props: PropertySet,
}

/// A clip and the image it currently holds.
#[derive(Debug)]
pub struct Clip {
    name: String,
    props: PropertySet,
    image: Mutex<Option<Box<PropertySet>>>,
}

/// An effect descriptor or instance.
#[derive(Debug, Default)]
pub struct Effect {
    /// The effect's properties.
    pub props: PropertySet,
    /// Its parameters.
    pub params: ParamSet,
    // Boxed: a clip's handle is its address.
    #[allow(clippy::vec_box)]
    clips: Mutex<Vec<Box<Clip>>>,
    life: Arc<Lifecycle>,
}

/// Destroyed instances' effects, kept so a plug-in thread that still holds their handles finds
/// them valid (its calls are recorded as late instead of reading freed memory).
static BURIED: Mutex<Vec<Buried>> = Mutex::new(Vec::new());

struct Buried(#[allow(dead_code)] Box<Effect>);
// SAFETY: a buried effect is only reached through handles the plug-in still holds, through
// the same synchronised accessors as a live one.
unsafe impl Send for Buried {}

impl Effect {
    fn handle(&self) -> OfxImageEffectHandle {
        self as *const Effect as OfxImageEffectHandle
    }

    /// Parameter names and types in definition order.
    pub fn param_list(&self) -> Vec<(String, String)> {
        let ps = self.params.params.lock().unwrap_or_else(|p| p.into_inner());
        ps.iter()
            .map(|p| (p.name.clone(), p.kind.clone()))
            .collect()
    }

    /// Clip names in definition order.
    pub fn clip_list(&self) -> Vec<String> {
        let cs = self.clips.lock().unwrap_or_else(|p| p.into_inner());
        cs.iter().map(|c| c.name.clone()).collect()
    }

    fn param(&self, name: &str) -> Option<*const Param> {
        let ps = self.params.params.lock().unwrap_or_else(|p| p.into_inner());
        ps.iter()
            .find(|p| p.name == name)
            .map(|p| &**p as *const Param)
    }
}

// --- messages ---

/// A message the plug-in posted: (effect handle, type, text, persistent).
type Posted = (usize, String, String, bool);

static MESSAGES: Mutex<Vec<Posted>> = Mutex::new(Vec::new());

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the plug-in passes NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Called by the C shim with the formatted text.
#[unsafe(no_mangle)]
pub extern "C" fn fsh_host_message(
    handle: *mut c_void,
    kind: *const c_char,
    _id: *const c_char,
    text: *const c_char,
    persistent: c_int,
) -> OfxStatus {
    let mut m = MESSAGES.lock().unwrap_or_else(|p| p.into_inner());
    if persistent != 0 {
        m.retain(|(h, _, _, p)| !(*p && *h == handle as usize));
    }
    note_effect_call(handle, "message");
    m.push((handle as usize, cstr(kind), cstr(text), persistent != 0));
    kOfxStatOK
}

/// Records a call on an instance's effect handle that comes too late ([`Lifecycle`]).
fn note_effect_call(handle: *mut c_void, call: &str) {
    // SAFETY: effect handles are addresses of boxed `Effect`s, never freed while the host is
    // loaded (destroyed ones are buried).
    if let Some(e) = unsafe { (handle as *const Effect).as_ref() } {
        e.life.note(|| call.to_string());
    }
}

unsafe extern "C" fn clear_persistent_message(handle: *mut c_void) -> OfxStatus {
    note_effect_call(handle, "clearPersistentMessage");
    let mut m = MESSAGES.lock().unwrap_or_else(|p| p.into_inner());
    m.retain(|(h, _, _, p)| !(*p && *h == handle as usize));
    kOfxStatOK
}

// --- the C shim and what it calls ---

unsafe extern "C" {
    fn fsh_paramGetValue(param: OfxParamHandle, ...) -> OfxStatus;
    fn fsh_paramGetValueAtTime(param: OfxParamHandle, time: OfxTime, ...) -> OfxStatus;
    fn fsh_paramSetValue(param: OfxParamHandle, ...) -> OfxStatus;
    fn fsh_paramSetValueAtTime(param: OfxParamHandle, time: OfxTime, ...) -> OfxStatus;
    fn fsh_message(
        handle: *mut c_void,
        kind: *const c_char,
        id: *const c_char,
        format: *const c_char,
        ...
    ) -> OfxStatus;
    fn fsh_setPersistentMessage(
        handle: *mut c_void,
        kind: *const c_char,
        id: *const c_char,
        format: *const c_char,
        ...
    ) -> OfxStatus;
}

fn param_ref<'a>(p: *mut c_void) -> Option<&'a Param> {
    // SAFETY: param handles are addresses of boxed `Param`s that live as long as their effect.
    unsafe { (p as *const Param).as_ref() }
}

fn kind_code(kind: &str) -> c_int {
    match kind {
        "OfxParamTypeInteger" | "OfxParamTypeChoice" | "OfxParamTypeBoolean" => 0,
        "OfxParamTypeDouble" => 1,
        "OfxParamTypeString" => 2,
        _ => -1,
    }
}

/// 0 int-like, 1 double, 2 string, −1 unknown.
#[unsafe(no_mangle)]
pub extern "C" fn fsh_param_kind(param: *mut c_void) -> c_int {
    param_ref(param).map_or(-1, |p| kind_code(&p.kind))
}

/// Reads a param's value (its default until set) into the one non-null pointer.
///
/// # Safety
/// `param` is a handle this host gave out; the non-null pointer is valid for a write of the
/// param's type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fsh_param_get(
    param: *mut c_void,
    i: *mut c_int,
    d: *mut f64,
    s: *mut *const c_char,
) -> OfxStatus {
    let Some(p) = param_ref(param) else {
        return kOfxStatErrBadHandle;
    };
    p.life.note(|| format!("paramGetValue {}", p.name));
    let mut value = p.value.lock().unwrap_or_else(|e| e.into_inner());
    if value.is_none() {
        *value = p.props.get("OfxParamPropDefault", 0);
    }
    // SAFETY: the shim passes the plug-in's out-pointer matching the param's kind.
    unsafe {
        match (value.as_ref(), kind_code(&p.kind)) {
            (Some(Value::Int(v)), 0) if !i.is_null() => *i = *v,
            (None, 0) if !i.is_null() => *i = 0,
            (Some(Value::Double(v)), 1) if !d.is_null() => *d = *v,
            (None, 1) if !d.is_null() => *d = 0.0,
            (Some(Value::Str(v)), 2) if !s.is_null() => *s = v.as_ptr(),
            (None, 2) if !s.is_null() => *s = c"".as_ptr(),
            _ => return kOfxStatErrValue,
        }
    }
    kOfxStatOK
}

/// Stores a param's value.
#[unsafe(no_mangle)]
pub extern "C" fn fsh_param_set(
    param: *mut c_void,
    i: c_int,
    d: f64,
    s: *const c_char,
) -> OfxStatus {
    let Some(p) = param_ref(param) else {
        return kOfxStatErrBadHandle;
    };
    p.life.note(|| format!("paramSetValue {}", p.name));
    let v = match kind_code(&p.kind) {
        0 => Value::Int(resolve_clamp_int(p, i)),
        1 => Value::Double(resolve_clamp_double(p, d)),
        2 => Value::Str(CString::new(cstr(s)).unwrap_or_default()),
        _ => return kOfxStatErrBadHandle,
    };
    *p.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    kOfxStatOK
}

/// As Resolve does: an integer param without both a range and a display range holds 0.
fn resolve_clamp_int(p: &Param, v: c_int) -> c_int {
    if p.kind != "OfxParamTypeInteger" {
        return v;
    }
    let bound = |name: &str| match p.props.get(name, 0) {
        Some(Value::Int(b)) => Some(b),
        _ => None,
    };
    match (
        bound("OfxParamPropMin").zip(bound("OfxParamPropDisplayMin")),
        bound("OfxParamPropMax").zip(bound("OfxParamPropDisplayMax")),
    ) {
        (Some((lo, _)), Some((hi, _))) => v.clamp(lo, hi.max(lo)),
        _ => 0,
    }
}

/// As Resolve does: a double param without a display range is clamped to (-1, 1).
fn resolve_clamp_double(p: &Param, v: f64) -> f64 {
    let bound = |name: &str| match p.props.get(name, 0) {
        Some(Value::Double(b)) => Some(b),
        _ => None,
    };
    match (
        bound("OfxParamPropDisplayMin"),
        bound("OfxParamPropDisplayMax"),
    ) {
        (Some(lo), Some(hi)) => v.clamp(lo, hi.max(lo)),
        _ => v.clamp(-1.0, 1.0),
    }
}

// --- property suite ---

fn props<'a>(p: OfxPropertySetHandle) -> Option<&'a PropertySet> {
    // SAFETY: property set handles are addresses of `PropertySet`s owned by the host objects.
    unsafe { (p as *const PropertySet).as_ref() }
}

unsafe extern "C" fn prop_set_pointer(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: *mut c_void,
) -> OfxStatus {
    props(p).map_or(kOfxStatErrBadHandle, |s| {
        s.set(&cstr(n), i.max(0) as usize, Value::Ptr(v as usize));
        kOfxStatOK
    })
}
unsafe extern "C" fn prop_set_string(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: *const c_char,
) -> OfxStatus {
    props(p).map_or(kOfxStatErrBadHandle, |s| {
        s.set(
            &cstr(n),
            i.max(0) as usize,
            Value::Str(CString::new(cstr(v)).unwrap_or_default()),
        );
        kOfxStatOK
    })
}
unsafe extern "C" fn prop_set_double(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: f64,
) -> OfxStatus {
    props(p).map_or(kOfxStatErrBadHandle, |s| {
        s.set(&cstr(n), i.max(0) as usize, Value::Double(v));
        kOfxStatOK
    })
}
unsafe extern "C" fn prop_set_int(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: c_int,
) -> OfxStatus {
    props(p).map_or(kOfxStatErrBadHandle, |s| {
        s.set(&cstr(n), i.max(0) as usize, Value::Int(v));
        kOfxStatOK
    })
}
unsafe extern "C" fn prop_get_pointer(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: *mut *mut c_void,
) -> OfxStatus {
    match props(p).and_then(|s| s.get(&cstr(n), i.max(0) as usize)) {
        Some(Value::Ptr(x)) => {
            // SAFETY: the plug-in's out-pointer.
            unsafe { *v = x as *mut c_void };
            kOfxStatOK
        }
        _ => kOfxStatErrUnknown,
    }
}
unsafe extern "C" fn prop_get_string(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: *mut *mut c_char,
) -> OfxStatus {
    let Some(s) = props(p) else {
        return kOfxStatErrBadHandle;
    };
    let m = s.values.lock().unwrap_or_else(|e| e.into_inner());
    match m.get(&cstr(n)).and_then(|vals| vals.get(i.max(0) as usize)) {
        Some(Value::Str(x)) => {
            // SAFETY: the plug-in's out-pointer; the string lives until the property changes.
            unsafe { *v = x.as_ptr() as *mut c_char };
            kOfxStatOK
        }
        _ => kOfxStatErrUnknown,
    }
}
unsafe extern "C" fn prop_get_double(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: *mut f64,
) -> OfxStatus {
    match props(p).and_then(|s| s.get(&cstr(n), i.max(0) as usize)) {
        Some(Value::Double(x)) => {
            // SAFETY: the plug-in's out-pointer.
            unsafe { *v = x };
            kOfxStatOK
        }
        _ => kOfxStatErrUnknown,
    }
}
unsafe extern "C" fn prop_get_int(
    p: OfxPropertySetHandle,
    n: *const c_char,
    i: c_int,
    v: *mut c_int,
) -> OfxStatus {
    match props(p).and_then(|s| s.get(&cstr(n), i.max(0) as usize)) {
        Some(Value::Int(x)) => {
            // SAFETY: the plug-in's out-pointer.
            unsafe { *v = x };
            kOfxStatOK
        }
        _ => kOfxStatErrUnknown,
    }
}
unsafe extern "C" fn prop_reset(_p: OfxPropertySetHandle, _n: *const c_char) -> OfxStatus {
    kOfxStatOK
}
unsafe extern "C" fn prop_get_dimension(
    p: OfxPropertySetHandle,
    n: *const c_char,
    count: *mut c_int,
) -> OfxStatus {
    props(p).map_or(kOfxStatErrBadHandle, |s| {
        let m = s.values.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the plug-in's out-pointer.
        unsafe { *count = m.get(&cstr(n)).map_or(0, |v| v.len()) as c_int };
        kOfxStatOK
    })
}

static PROPERTY_SUITE: OfxPropertySuiteV1 = OfxPropertySuiteV1 {
    propSetPointer: Some(prop_set_pointer),
    propSetString: Some(prop_set_string),
    propSetDouble: Some(prop_set_double),
    propSetInt: Some(prop_set_int),
    propSetPointerN: None,
    propSetStringN: None,
    propSetDoubleN: None,
    propSetIntN: None,
    propGetPointer: Some(prop_get_pointer),
    propGetString: Some(prop_get_string),
    propGetDouble: Some(prop_get_double),
    propGetInt: Some(prop_get_int),
    propGetPointerN: None,
    propGetStringN: None,
    propGetDoubleN: None,
    propGetIntN: None,
    propReset: Some(prop_reset),
    propGetDimension: Some(prop_get_dimension),
};

// --- image effect suite ---

fn effect<'a>(h: OfxImageEffectHandle) -> Option<&'a Effect> {
    // SAFETY: effect handles are addresses of boxed `Effect`s the host owns.
    unsafe { (h as *const Effect).as_ref() }
}

unsafe extern "C" fn get_property_set(
    h: OfxImageEffectHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    effect(h).map_or(kOfxStatErrBadHandle, |e| {
        // SAFETY: the plug-in's out-pointer.
        unsafe { *out = e.props.handle() };
        kOfxStatOK
    })
}
unsafe extern "C" fn get_param_set(
    h: OfxImageEffectHandle,
    out: *mut OfxParamSetHandle,
) -> OfxStatus {
    effect(h).map_or(kOfxStatErrBadHandle, |e| {
        // SAFETY: the plug-in's out-pointer.
        unsafe { *out = &e.params as *const ParamSet as OfxParamSetHandle };
        kOfxStatOK
    })
}
unsafe extern "C" fn clip_define(
    h: OfxImageEffectHandle,
    name: *const c_char,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let Some(e) = effect(h) else {
        return kOfxStatErrBadHandle;
    };
    let clip = Box::new(Clip {
        name: cstr(name),
        props: PropertySet::default(),
        image: Mutex::new(None),
    });
    // SAFETY: the plug-in's out-pointer; the clip box never moves or drops before the effect.
    unsafe { *out = clip.props.handle() };
    e.clips.lock().unwrap_or_else(|p| p.into_inner()).push(clip);
    kOfxStatOK
}
unsafe extern "C" fn clip_get_handle(
    h: OfxImageEffectHandle,
    name: *const c_char,
    clip: *mut OfxImageClipHandle,
    props_out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let Some(e) = effect(h) else {
        return kOfxStatErrBadHandle;
    };
    let name = cstr(name);
    let clips = e.clips.lock().unwrap_or_else(|p| p.into_inner());
    let Some(c) = clips.iter().find(|c| c.name == name) else {
        return kOfxStatErrUnknown;
    };
    // SAFETY: the plug-in's out-pointers (the props one may be null).
    unsafe {
        *clip = &**c as *const Clip as OfxImageClipHandle;
        if !props_out.is_null() {
            *props_out = c.props.handle();
        }
    }
    kOfxStatOK
}
unsafe extern "C" fn clip_get_property_set(
    clip: OfxImageClipHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    // SAFETY: clip handles are addresses of boxed `Clip`s.
    match unsafe { (clip as *const Clip).as_ref() } {
        Some(c) => {
            // SAFETY: the plug-in's out-pointer.
            unsafe { *out = c.props.handle() };
            kOfxStatOK
        }
        None => kOfxStatErrBadHandle,
    }
}
unsafe extern "C" fn clip_get_image(
    clip: OfxImageClipHandle,
    _time: OfxTime,
    _region: *const OfxRectD,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    // SAFETY: clip handles are addresses of boxed `Clip`s.
    let Some(c) = (unsafe { (clip as *const Clip).as_ref() }) else {
        return kOfxStatErrBadHandle;
    };
    match c.image.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(img) => {
            // SAFETY: the plug-in's out-pointer.
            unsafe { *out = img.handle() };
            kOfxStatOK
        }
        None => {
            // As Resolve does for a clip that is not connected: OK, and no image.
            // SAFETY: the plug-in's out-pointer.
            unsafe { *out = null_mut() };
            kOfxStatOK
        }
    }
}
unsafe extern "C" fn clip_release_image(_img: OfxPropertySetHandle) -> OfxStatus {
    kOfxStatOK
}
unsafe extern "C" fn abort_render(_h: OfxImageEffectHandle) -> c_int {
    0
}

static IMAGE_EFFECT_SUITE: OfxImageEffectSuiteV1 = OfxImageEffectSuiteV1 {
    getPropertySet: Some(get_property_set),
    getParamSet: Some(get_param_set),
    clipDefine: Some(clip_define),
    clipGetHandle: Some(clip_get_handle),
    clipGetPropertySet: Some(clip_get_property_set),
    clipGetImage: Some(clip_get_image),
    clipReleaseImage: Some(clip_release_image),
    clipGetRegionOfDefinition: None,
    abort: Some(abort_render),
    imageMemoryAlloc: None,
    imageMemoryFree: None,
    imageMemoryLock: None,
    imageMemoryUnlock: None,
};

// --- parameter suite ---

fn param_set<'a>(h: OfxParamSetHandle) -> Option<&'a ParamSet> {
    // SAFETY: param set handles are addresses of `ParamSet`s inside boxed effects.
    unsafe { (h as *const ParamSet).as_ref() }
}

unsafe extern "C" fn param_define(
    set: OfxParamSetHandle,
    kind: *const c_char,
    name: *const c_char,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let Some(s) = param_set(set) else {
        return kOfxStatErrBadHandle;
    };
    let p = Box::new(Param {
        name: cstr(name),
        kind: cstr(kind),
        props: PropertySet::default(),
        value: Mutex::new(None),
        life: Arc::default(),
    });
    if !out.is_null() {
        // SAFETY: the plug-in's out-pointer; the param box lives as long as the effect.
        unsafe { *out = p.props.handle() };
    }
    s.params.lock().unwrap_or_else(|e| e.into_inner()).push(p);
    kOfxStatOK
}
unsafe extern "C" fn param_get_handle(
    set: OfxParamSetHandle,
    name: *const c_char,
    out: *mut OfxParamHandle,
    props_out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    let Some(s) = param_set(set) else {
        return kOfxStatErrBadHandle;
    };
    let name = cstr(name);
    let ps = s.params.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = ps.iter().find(|p| p.name == name) else {
        return kOfxStatErrUnknown;
    };
    // SAFETY: the plug-in's out-pointers (props may be null).
    unsafe {
        *out = &**p as *const Param as OfxParamHandle;
        if !props_out.is_null() {
            *props_out = p.props.handle();
        }
    }
    kOfxStatOK
}
unsafe extern "C" fn param_set_get_property_set(
    set: OfxParamSetHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    param_set(set).map_or(kOfxStatErrBadHandle, |s| {
        // SAFETY: the plug-in's out-pointer.
        unsafe { *out = s.props.handle() };
        kOfxStatOK
    })
}
unsafe extern "C" fn param_get_property_set(
    p: OfxParamHandle,
    out: *mut OfxPropertySetHandle,
) -> OfxStatus {
    param_ref(p.cast()).map_or(kOfxStatErrBadHandle, |p| {
        // SAFETY: the plug-in's out-pointer.
        unsafe { *out = p.props.handle() };
        kOfxStatOK
    })
}
unsafe extern "C" fn param_edit(_set: OfxParamSetHandle, _name: *const c_char) -> OfxStatus {
    kOfxStatOK
}
unsafe extern "C" fn param_edit_end(_set: OfxParamSetHandle) -> OfxStatus {
    kOfxStatOK
}

static PARAMETER_SUITE: OfxParameterSuiteV1 = OfxParameterSuiteV1 {
    paramDefine: Some(param_define),
    paramGetHandle: Some(param_get_handle),
    paramSetGetPropertySet: Some(param_set_get_property_set),
    paramGetPropertySet: Some(param_get_property_set),
    paramGetValue: Some(fsh_paramGetValue),
    paramGetValueAtTime: Some(fsh_paramGetValueAtTime),
    paramGetDerivative: None,
    paramGetIntegral: None,
    paramSetValue: Some(fsh_paramSetValue),
    paramSetValueAtTime: Some(fsh_paramSetValueAtTime),
    paramGetNumKeys: None,
    paramGetKeyTime: None,
    paramGetKeyIndex: None,
    paramDeleteKey: None,
    paramDeleteAllKeys: None,
    paramCopy: None,
    paramEditBegin: Some(param_edit),
    paramEditEnd: Some(param_edit_end),
};

static MESSAGE_SUITE: OfxMessageSuiteV2 = OfxMessageSuiteV2 {
    message: Some(fsh_message),
    setPersistentMessage: Some(fsh_setPersistentMessage),
    clearPersistentMessage: Some(clear_persistent_message),
};

// --- memory, progress and multithread suites ---

unsafe extern "C" fn memory_alloc(_h: *mut c_void, n: usize, out: *mut *mut c_void) -> OfxStatus {
    // SAFETY: plain C allocation, freed by memory_free.
    let p = unsafe { libc::malloc(n.max(1)) };
    if p.is_null() {
        return kOfxStatErrMemory;
    }
    // SAFETY: the plug-in's out-pointer.
    unsafe { *out = p };
    kOfxStatOK
}
unsafe extern "C" fn memory_free(p: *mut c_void) -> OfxStatus {
    // SAFETY: a pointer memory_alloc returned (or null).
    unsafe { libc::free(p) };
    kOfxStatOK
}

static MEMORY_SUITE: OfxMemorySuiteV1 = OfxMemorySuiteV1 {
    memoryAlloc: Some(memory_alloc),
    memoryFree: Some(memory_free),
};

/// Progress the plug-in reported: (effect, fraction).
static PROGRESS: Mutex<Vec<(usize, f64)>> = Mutex::new(Vec::new());

unsafe extern "C" fn progress_start(h: *mut c_void, _label: *const c_char) -> OfxStatus {
    PROGRESS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((h as usize, 0.0));
    kOfxStatOK
}
unsafe extern "C" fn progress_update(h: *mut c_void, v: f64) -> OfxStatus {
    PROGRESS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((h as usize, v));
    kOfxStatOK
}
unsafe extern "C" fn progress_end(h: *mut c_void) -> OfxStatus {
    PROGRESS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((h as usize, 1.0));
    kOfxStatOK
}

static PROGRESS_SUITE: OfxProgressSuiteV1 = OfxProgressSuiteV1 {
    progressStart: Some(progress_start),
    progressUpdate: Some(progress_update),
    progressEnd: Some(progress_end),
};

thread_local! {
    static THREAD_INDEX: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

unsafe extern "C" fn multi_thread(
    func: OfxThreadFunctionV1,
    n: std::ffi::c_uint,
    arg: *mut c_void,
) -> OfxStatus {
    let Some(f) = func else {
        return kOfxStatErrBadHandle;
    };
    let n = n.max(1);
    let arg = arg as usize;
    std::thread::scope(|s| {
        for i in 0..n {
            s.spawn(move || {
                THREAD_INDEX.with(|c| c.set(Some(i)));
                // SAFETY: the plug-in's thread function with its own argument.
                unsafe { f(i, n, arg as *mut c_void) };
            });
        }
    });
    kOfxStatOK
}
unsafe extern "C" fn multi_thread_num_cpus(n: *mut std::ffi::c_uint) -> OfxStatus {
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get()) as std::ffi::c_uint;
    // SAFETY: the plug-in's out-pointer.
    unsafe { *n = cpus };
    kOfxStatOK
}
unsafe extern "C" fn multi_thread_index(i: *mut std::ffi::c_uint) -> OfxStatus {
    // SAFETY: the plug-in's out-pointer.
    unsafe { *i = THREAD_INDEX.with(|c| c.get()).unwrap_or(0) };
    kOfxStatOK
}
unsafe extern "C" fn multi_thread_is_spawned() -> c_int {
    THREAD_INDEX.with(|c| c.get()).is_some() as c_int
}

/// A recursive mutex for the suite: owner thread and depth, with a condvar to wait on.
#[derive(Default)]
struct HostMutex {
    state: Mutex<(Option<std::thread::ThreadId>, i32)>,
    free: std::sync::Condvar,
}

fn host_mutex<'a>(m: OfxMutexHandle) -> Option<&'a HostMutex> {
    // SAFETY: mutex handles are boxed `HostMutex`es made by mutex_create.
    unsafe { (m as *const HostMutex).as_ref() }
}

unsafe extern "C" fn mutex_create(out: *mut OfxMutexHandle, lock_count: c_int) -> OfxStatus {
    let m = Box::new(HostMutex::default());
    if lock_count > 0 {
        *m.state.lock().unwrap_or_else(|p| p.into_inner()) =
            (Some(std::thread::current().id()), lock_count);
    }
    // SAFETY: the plug-in's out-pointer; freed by mutex_destroy.
    unsafe { *out = Box::into_raw(m) as OfxMutexHandle };
    kOfxStatOK
}
unsafe extern "C" fn mutex_destroy(m: OfxMutexHandle) -> OfxStatus {
    if !m.is_null() {
        // SAFETY: made by mutex_create, destroyed once.
        drop(unsafe { Box::from_raw(m as *mut HostMutex) });
    }
    kOfxStatOK
}
fn try_take(m: &HostMutex, wait: bool) -> bool {
    let me = std::thread::current().id();
    let mut st = m.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match st.0 {
            None => {
                *st = (Some(me), 1);
                return true;
            }
            Some(owner) if owner == me => {
                st.1 += 1;
                return true;
            }
            Some(_) if !wait => return false,
            Some(_) => st = m.free.wait(st).unwrap_or_else(|p| p.into_inner()),
        }
    }
}
unsafe extern "C" fn mutex_lock(m: OfxMutexHandle) -> OfxStatus {
    host_mutex(m).map_or(kOfxStatErrBadHandle, |m| {
        try_take(m, true);
        kOfxStatOK
    })
}
unsafe extern "C" fn mutex_unlock(m: OfxMutexHandle) -> OfxStatus {
    host_mutex(m).map_or(kOfxStatErrBadHandle, |m| {
        let mut st = m.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.1 > 0 {
            st.1 -= 1;
        }
        if st.1 == 0 {
            st.0 = None;
            m.free.notify_one();
        }
        kOfxStatOK
    })
}
unsafe extern "C" fn mutex_try_lock(m: OfxMutexHandle) -> OfxStatus {
    host_mutex(m).map_or(kOfxStatErrBadHandle, |m| {
        if try_take(m, false) {
            kOfxStatOK
        } else {
            kOfxStatFailed
        }
    })
}

static MULTI_THREAD_SUITE: OfxMultiThreadSuiteV1 = OfxMultiThreadSuiteV1 {
    multiThread: Some(multi_thread),
    multiThreadNumCPUs: Some(multi_thread_num_cpus),
    multiThreadIndex: Some(multi_thread_index),
    multiThreadIsSpawnedThread: Some(multi_thread_is_spawned),
    mutexCreate: Some(mutex_create),
    mutexDestroy: Some(mutex_destroy),
    mutexLock: Some(mutex_lock),
    mutexUnLock: Some(mutex_unlock),
    mutexTryLock: Some(mutex_try_lock),
};

unsafe extern "C" fn fetch_suite(
    _host: OfxPropertySetHandle,
    name: *const c_char,
    version: c_int,
) -> *const c_void {
    match (cstr(name).as_str(), version) {
        ("OfxPropertySuite", 1) => &PROPERTY_SUITE as *const _ as *const c_void,
        ("OfxImageEffectSuite", 1) => &IMAGE_EFFECT_SUITE as *const _ as *const c_void,
        ("OfxParameterSuite", 1) => &PARAMETER_SUITE as *const _ as *const c_void,
        ("OfxMessageSuite", 2) => &MESSAGE_SUITE as *const _ as *const c_void,
        ("OfxMemorySuite", 1) => &MEMORY_SUITE as *const _ as *const c_void,
        ("OfxProgressSuite", 1) => &PROGRESS_SUITE as *const _ as *const c_void,
        ("OfxMultiThreadSuite", 1) => &MULTI_THREAD_SUITE as *const _ as *const c_void,
        _ => null(),
    }
}

// --- the host ---

type MainEntry = unsafe extern "C" fn(
    *const c_char,
    *const c_void,
    OfxPropertySetHandle,
    OfxPropertySetHandle,
) -> OfxStatus;

/// A plug-in found in a bundle, described in the Filter context.
pub struct LoadedPlugin {
    /// Its identifier.
    pub id: String,
    /// The description the plug-in gave (clips and params defined in the Filter context).
    pub descriptor: Box<Effect>,
    entry: MainEntry,
}

/// The host: loaded bundles and their plug-ins.
pub struct OfxTestHost {
    /// Keeps each bundle's binary loaded.
    _libraries: Vec<libloading::Library>,
    _host: Box<(PropertySet, OfxHost)>,
    /// Every plug-in found.
    pub plugins: Vec<LoadedPlugin>,
}

/// The binaries of every `*.ofx.bundle` in the `:`-separated folders of `plugin_path`, as the
/// OFX packaging spec lays them out (`Contents/Linux-x86-64/*.ofx`).
pub fn find_bundles(plugin_path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in plugin_path.split(':').filter(|d| !d.is_empty()) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut bundles: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.ends_with(".ofx.bundle") && !name.starts_with('@')
            })
            .collect();
        bundles.sort();
        for b in bundles {
            let arch = b.join("Contents").join("Linux-x86-64");
            if let Ok(bins) = std::fs::read_dir(&arch) {
                out.extend(
                    bins.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "ofx")),
                );
            }
        }
    }
    out
}

impl OfxTestHost {
    /// Loads every bundle on `plugin_path` and describes each plug-in in the Filter context.
    pub fn load(plugin_path: &str) -> anyhow::Result<OfxTestHost> {
        let host_props = PropertySet::default();
        host_props.set_str(kOfxPropName, 0, c"org.faceswappp.testhost");
        host_props.set_str(kOfxPropLabel, 0, c"Faceswap++ test host");
        host_props.set_int(kOfxImageEffectHostPropIsBackground, 0, 0);
        host_props.set_int(kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
        let mut host = Box::new((
            host_props,
            OfxHost {
                host: null_mut(),
                fetchSuite: Some(fetch_suite),
            },
        ));
        host.1.host = host.0.handle();
        let host_ptr = &mut host.1 as *mut OfxHost;
        let mut libraries = Vec::new();
        let mut plugins = Vec::new();
        for bin in find_bundles(plugin_path) {
            // SAFETY: loading a plug-in runs its initialisers; that is what a host does.
            let lib = unsafe { libloading::Library::new(&bin) }
                .with_context(|| format!("loading {}", bin.display()))?;
            // SAFETY: the two entry points every OFX binary exports, with their C signatures.
            let (count, get) = unsafe {
                (
                    *lib.get::<unsafe extern "C" fn() -> c_int>(b"OfxGetNumberOfPlugins\0")?,
                    *lib.get::<unsafe extern "C" fn(c_int) -> *const OfxPlugin>(b"OfxGetPlugin\0")?,
                )
            };
            // SAFETY: calling the plug-in's exported functions as the OFX core API defines.
            let n = unsafe { count() };
            for i in 0..n {
                // SAFETY: as above; the returned struct lives in the loaded binary.
                let plugin = unsafe { get(i).as_ref() }.context("OfxGetPlugin returned null")?;
                let id = cstr(plugin.pluginIdentifier);
                let (Some(set_host), Some(entry)) = (plugin.setHost, plugin.mainEntry) else {
                    bail!("{id}: no setHost or mainEntry");
                };
                // SAFETY: the host struct outlives the library (both owned by the returned host).
                unsafe { set_host(host_ptr) };
                let descriptor = Box::new(Effect::default());
                let call = |action: &CStr, handle: *const c_void, args: OfxPropertySetHandle| {
                    // SAFETY: the plug-in's mainEntry with a handle the host owns.
                    unsafe { entry(action.as_ptr(), handle, args, null_mut()) }
                };
                let st = call(kOfxActionLoad, null(), null_mut());
                if st != kOfxStatOK && st != kOfxStatReplyDefault {
                    bail!("{id}: Load returned {st}");
                }
                let st = call(
                    kOfxActionDescribe,
                    descriptor.handle() as *const c_void,
                    null_mut(),
                );
                if st != kOfxStatOK {
                    bail!("{id}: Describe returned {st}");
                }
                let args = PropertySet::default();
                args.set_str(kOfxImageEffectPropContext, 0, kOfxImageEffectContextFilter);
                let st = call(
                    kOfxImageEffectActionDescribeInContext,
                    descriptor.handle() as *const c_void,
                    args.handle(),
                );
                if st != kOfxStatOK {
                    bail!("{id}: DescribeInContext returned {st}");
                }
                plugins.push(LoadedPlugin {
                    id,
                    descriptor,
                    entry,
                });
            }
            libraries.push(lib);
        }
        Ok(OfxTestHost {
            _libraries: libraries,
            _host: host,
            plugins,
        })
    }

    /// A new instance of plug-in `id` (its clips and params copied from the description).
    pub fn create_instance(&self, id: &str) -> anyhow::Result<Instance<'_>> {
        let p = self
            .plugins
            .iter()
            .find(|p| p.id == id)
            .with_context(|| format!("no plug-in {id}"))?;
        let effect = Box::new(Effect::default());
        effect
            .props
            .set_str(kOfxImageEffectPropContext, 0, kOfxImageEffectContextFilter);
        for c in p
            .descriptor
            .clips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            effect
                .clips
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Box::new(Clip {
                    name: c.name.clone(),
                    props: PropertySet {
                        values: Mutex::new(
                            c.props
                                .values
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .clone(),
                        ),
                    },
                    image: Mutex::new(None),
                }));
        }
        for prm in p
            .descriptor
            .params
            .params
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            effect
                .params
                .params
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Box::new(Param {
                    name: prm.name.clone(),
                    kind: prm.kind.clone(),
                    props: PropertySet {
                        values: Mutex::new(
                            prm.props
                                .values
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .clone(),
                        ),
                    },
                    value: Mutex::new(None),
                    life: Arc::clone(&effect.life),
                }));
        }
        let instance = Instance {
            effect,
            entry: p.entry,
            render_lock: Mutex::new(()),
            _host: std::marker::PhantomData,
        };
        let st = instance.call(kOfxActionCreateInstance, null_mut());
        if st != kOfxStatOK && st != kOfxStatReplyDefault {
            bail!("{id}: CreateInstance returned {st}");
        }
        Ok(instance)
    }
}

impl Drop for OfxTestHost {
    fn drop(&mut self) {
        for p in &self.plugins {
            // SAFETY: the plug-in's mainEntry; Unload is the last action before dlclose.
            unsafe { (p.entry)(kOfxActionUnload.as_ptr(), null(), null_mut(), null_mut()) };
        }
    }
}

/// A host-side image: RGBA rows with any rowbytes (negative = top row first in memory).
pub struct HostBuffer {
    /// The bytes, lowest address first.
    pub data: Vec<u8>,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// OFX rowbytes: positive = bottom row first in memory.
    pub row_bytes: i32,
    /// `OfxBitDepth…`.
    pub depth: &'static CStr,
}

impl HostBuffer {
    /// An output image of the same size, layout and depth, all zeros.
    pub fn blank_like(&self) -> HostBuffer {
        HostBuffer {
            data: vec![0; self.data.len()],
            width: self.width,
            height: self.height,
            row_bytes: self.row_bytes,
            depth: self.depth,
        }
    }

    /// Bytes per pixel.
    pub fn bpp(&self) -> usize {
        match self.depth.to_bytes() {
            b"OfxBitDepthByte" => 4,
            b"OfxBitDepthShort" | b"OfxBitDepthHalf" => 8,
            _ => 16,
        }
    }

    /// Offset of the first byte of image row `y` (top row = 0).
    pub fn row_offset(&self, y: usize) -> usize {
        let stride = self.row_bytes.unsigned_abs() as usize;
        let h = self.height as usize;
        if self.row_bytes >= 0 {
            (h - 1 - y) * stride
        } else {
            y * stride
        }
    }

    fn image_props(&mut self) -> Box<PropertySet> {
        // OFX's data pointer is the bottom row's first pixel.
        let bottom = self.row_offset(self.height as usize - 1);
        let p = Box::new(PropertySet::default());
        p.set_ptr(
            kOfxImagePropData,
            self.data.as_mut_ptr().wrapping_add(bottom).cast(),
        );
        p.set_int(kOfxImagePropRowBytes, 0, self.row_bytes);
        for (i, v) in [0, 0, self.width as c_int, self.height as c_int]
            .iter()
            .enumerate()
        {
            p.set_int(kOfxImagePropBounds, i, *v);
        }
        p.set_str(kOfxImageEffectPropPixelDepth, 0, self.depth);
        p.set_str(kOfxImageEffectPropComponents, 0, kOfxImageComponentRGBA);
        p
    }
}

/// An effect instance in the host (it cannot outlive the host: its code is in the host's
/// loaded library).
pub struct Instance<'host> {
    /// The instance's effect object (params, clips, properties).
    pub effect: Box<Effect>,
    entry: MainEntry,
    render_lock: Mutex<()>,
    _host: std::marker::PhantomData<&'host OfxTestHost>,
}

// The plug-in declares FullySafe rendering; the test renders from several threads.
unsafe impl Send for Instance<'_> {}
unsafe impl Sync for Instance<'_> {}

impl Instance<'_> {
    fn call(&self, action: &CStr, args: OfxPropertySetHandle) -> OfxStatus {
        self.call_with(action, args, null_mut())
    }

    fn call_with(
        &self,
        action: &CStr,
        args: OfxPropertySetHandle,
        out: OfxPropertySetHandle,
    ) -> OfxStatus {
        // SAFETY: the plug-in's mainEntry with this instance's handle.
        unsafe {
            (self.entry)(
                action.as_ptr(),
                self.effect.handle() as *const c_void,
                args,
                out,
            )
        }
    }

    /// Runs any action by name (the tests' way to send an unknown or a failing one).
    pub fn action(&self, action: &CStr) -> OfxStatus {
        self.call(action, null_mut())
    }

    fn param(&self, name: &str) -> anyhow::Result<&Param> {
        let p = self
            .effect
            .param(name)
            .with_context(|| format!("no param {name}"))?;
        // SAFETY: params are boxed inside the effect, which `self` owns.
        Ok(unsafe { &*p })
    }

    /// Sets a string param (as a user would in the host's UI).
    pub fn set_string(&self, name: &str, v: &str) -> anyhow::Result<()> {
        *self
            .param(name)?
            .value
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Value::Str(CString::new(v)?));
        Ok(())
    }

    /// Sets an integer or choice param.
    pub fn set_int(&self, name: &str, v: c_int) -> anyhow::Result<()> {
        *self
            .param(name)?
            .value
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Value::Int(v));
        Ok(())
    }

    /// A string param's current value (its default until set).
    pub fn string(&self, name: &str) -> anyhow::Result<String> {
        let p = self.param(name)?;
        let mut s: *const c_char = null();
        // SAFETY: our own param handle and a valid out-pointer for a string.
        let st = unsafe {
            fsh_param_get(
                p as *const Param as *mut c_void,
                null_mut(),
                null_mut(),
                &mut s,
            )
        };
        if st != kOfxStatOK {
            bail!("param {name}: status {st}");
        }
        Ok(cstr(s))
    }

    /// A double param's current value (its default until set).
    pub fn double(&self, name: &str) -> anyhow::Result<f64> {
        let p = self.param(name)?;
        let mut d = 0.0f64;
        // SAFETY: our own param handle and a valid out-pointer for a double.
        let st = unsafe {
            fsh_param_get(
                p as *const Param as *mut c_void,
                null_mut(),
                &mut d,
                null_mut(),
            )
        };
        if st != kOfxStatOK {
            bail!("param {name}: status {st}");
        }
        Ok(d)
    }

    /// Sends InstanceChanged for param `name` as a user edit at `time` (a button press).
    pub fn press(&self, name: &str, time: f64) -> anyhow::Result<OfxStatus> {
        let args = PropertySet::default();
        args.set_str(kOfxPropType, 0, kOfxTypeParameter);
        args.set_str(kOfxPropName, 0, &CString::new(name)?);
        args.set_str(kOfxPropChangeReason, 0, kOfxChangeUserEdited);
        args.set_double(kOfxPropTime, 0, time);
        args.set_double(kOfxImageEffectPropRenderScale, 0, 1.0);
        args.set_double(kOfxImageEffectPropRenderScale, 1, 1.0);
        Ok(self.call(kOfxActionInstanceChanged, args.handle()))
    }

    /// The persistent message the plug-in set on this instance, if any.
    pub fn persistent_message(&self) -> Option<String> {
        let h = self.effect.handle() as usize;
        let m = MESSAGES.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .rev()
            .find(|(mh, _, _, p)| *p && *mh == h)
            .map(|(_, _, t, _)| t.clone())
    }

    /// Renders frame `time`: `src` goes into the Source clip, the result into `dst`.
    pub fn render(&self, time: f64, src: &mut HostBuffer, dst: &mut HostBuffer) -> OfxStatus {
        self.render_with(time, Some(src), dst)
    }

    /// A render with nothing connected to the source clip: as in Resolve, fetching its image
    /// succeeds with no image.
    pub fn render_unconnected(&self, time: f64, dst: &mut HostBuffer) -> OfxStatus {
        self.render_with(time, None, dst)
    }

    fn render_with(
        &self,
        time: f64,
        src: Option<&mut HostBuffer>,
        dst: &mut HostBuffer,
    ) -> OfxStatus {
        // Clips hold one image per instance: renders of one instance take turns; separate
        // instances render at once.
        let _one = self.render_lock.lock().unwrap_or_else(|p| p.into_inner());
        {
            let clips = self.effect.clips.lock().unwrap_or_else(|e| e.into_inner());
            let mut src_props = src.map(|s| s.image_props());
            for c in clips.iter() {
                let img = if c.name == "Source" {
                    src_props.take()
                } else {
                    Some(dst.image_props())
                };
                *c.image.lock().unwrap_or_else(|e| e.into_inner()) = img;
            }
        }
        // The order a host runs: clip preferences, is-identity, then a one-frame sequence.
        let prefs = PropertySet::default();
        self.call_with(
            kOfxImageEffectActionGetClipPreferences,
            null_mut(),
            prefs.handle(),
        );
        let args = PropertySet::default();
        args.set_double(kOfxPropTime, 0, time);
        for (i, v) in [0, 0, dst.width as c_int, dst.height as c_int]
            .iter()
            .enumerate()
        {
            args.set_int(kOfxImageEffectPropRenderWindow, i, *v);
        }
        args.set_double(kOfxImageEffectPropRenderScale, 0, 1.0);
        args.set_double(kOfxImageEffectPropRenderScale, 1, 1.0);
        args.set_str(kOfxImageEffectPropFieldToRender, 0, kOfxImageFieldNone);
        let identity = PropertySet::default();
        let st = self.call_with(
            kOfxImageEffectActionIsIdentity,
            args.handle(),
            identity.handle(),
        );
        if st != kOfxStatReplyDefault && st != kOfxStatOK {
            return st;
        }
        let seq = PropertySet::default();
        seq.set_double(kOfxImageEffectPropFrameRange, 0, time);
        seq.set_double(kOfxImageEffectPropFrameRange, 1, time);
        seq.set_double(kOfxImageEffectPropFrameStep, 0, 1.0);
        seq.set_int(kOfxPropIsInteractive, 0, 0);
        seq.set_double(kOfxImageEffectPropRenderScale, 0, 1.0);
        seq.set_double(kOfxImageEffectPropRenderScale, 1, 1.0);
        self.call(kOfxImageEffectActionBeginSequenceRender, seq.handle());
        let st = self.call(kOfxImageEffectActionRender, args.handle());
        self.call(kOfxImageEffectActionEndSequenceRender, seq.handle());
        for c in self
            .effect
            .clips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            *c.image.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        st
    }
}

impl Instance<'_> {
    /// Destroys the instance (as dropping it does) and returns its lifecycle, whose late
    /// calls a test checks once the plug-in's threads are done.
    pub fn destroy(self) -> Arc<Lifecycle> {
        let life = Arc::clone(&self.effect.life);
        drop(self);
        life
    }
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        let life = Arc::clone(&self.effect.life);
        life.set(Destroy::Running(std::thread::current().id()));
        self.call(kOfxActionDestroyInstance, null_mut());
        life.set(Destroy::Done);
        let effect = std::mem::take(&mut self.effect);
        BURIED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Buried(effect));
    }
}
