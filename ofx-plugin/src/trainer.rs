//! The "Faceswap Trainer" effect: training from the editor. In Collect A / Collect B mode,
//! every frame rendered between the in and out params is sent to the daemon as material for
//! that side of its project (the "project" param, shared by every instance naming it; the
//! daemon finds and aligns the faces). "Train" queues
//! a training job and returns at once; a status thread asks the daemon how the project goes.
//! The thread never calls the host (OFX lets a plug-in set params only inside its actions, and
//! an instance may be destroyed while the thread waits on the daemon): it leaves the status
//! line per project, and the instance's next render or param change shows it and sets the
//! hidden refresh param to the newest checkpoint's step, so the host re-renders. Buttons never
//! fetch images (that deadlocks Resolve/Fusion).

use std::ffi::{CStr, c_int};
use std::sync::Arc;
use std::time::Duration;

use faceswap_protocol::{ProjectReport, Request, Response, Side, SocketPath, TrainSettings};
use openfx::sys::generic::core::*;
use openfx::sys::image_effect_v1::image_effect::*;

use crate::background::{self, StopSignal};
use crate::host::*;
use crate::status::{STATUS, StatusLine, publish};
use crate::{DaemonLink, copy_rows};

/// Inside an action: sets the status param (and the refresh param on a new checkpoint) when
/// the project's status line changed since this instance last showed it.
fn show_status(s: &Suites, effect: OfxImageEffectHandle) -> Res<()> {
    let project = project_name(s, effect)?;
    let inst = instance(s, effect)?;
    let mut shown = inst.shown.lock().unwrap_or_else(|p| p.into_inner());
    // Per frame: compared in place, copied only when it changed.
    let latest = {
        let map = STATUS.lock().unwrap_or_else(|p| p.into_inner());
        match map.as_ref().and_then(|m| m.get(&project)) {
            Some(latest) if shown.as_ref() != Some(latest) => latest.clone(),
            _ => return Ok(()),
        }
    };
    if shown.as_ref().is_none_or(|s| s.text != latest.text) {
        set_param_string(s, effect, c"status", &crate::one_line(&latest.text))?;
    }
    if let Some(step) = latest.checkpoint_step
        && shown
            .as_ref()
            .is_none_or(|s| s.checkpoint_step != Some(step))
    {
        set_param_double(s, effect, c"refresh", step as f64)?;
    }
    *shown = Some(latest);
    Ok(())
}

const COLLECT: [(&CStr, &str); 3] = [
    (c"Off", "off"),
    (c"Collect A (the face to put in)", "a"),
    (c"Collect B (the faces to replace)", "b"),
];
const COLLECT_LABELS: [&CStr; 3] = choice_labels(&COLLECT);
const MODEL_SIZES: [(&CStr, &str); 3] = [
    (c"Small (trains on a CPU in minutes)", "small"),
    (c"DeepFaceLab defaults (GPU)", "dfl"),
    // Appended, so saved projects keep their choice index.
    (c"Phaze-A, Faceswap++ optimised (GPU)", "fspp"),
];
const MODEL_SIZES_LABELS: [&CStr; 3] = choice_labels(&MODEL_SIZES);

/// The project a trainer instance works on: its "project" param, "default" when empty.
/// Instances with the same project share faces and model (one collects A, another B).
fn project_name(s: &Suites, effect: OfxImageEffectHandle) -> Res<String> {
    let name = param_string(s, effect, c"project")?.trim().to_string();
    Ok(if name.is_empty() {
        DEFAULT_PROJECT.to_string()
    } else {
        name
    })
}

const DEFAULT_PROJECT: &str = "default";

/// The trainer's params.
pub(crate) const TRAINER_PARAMS: &[ParamDef] = &[
    ParamDef {
        name: c"project",
        label: c"Project",
        hint: c"Trainer instances with the same project share their faces and model: collect A on one clip and B on another, then train (letters, digits, - and _)",
        kind: ParamKind::Str {
            default: c"default",
            directory: false,
            secret: false,
        },
    },
    ParamDef {
        name: c"collect",
        label: c"Collect",
        hint: c"Send frames rendered between In and Out to faceswapd as training material",
        kind: ParamKind::Choice {
            options: &COLLECT_LABELS,
            default: 0,
        },
    },
    ParamDef {
        name: c"in",
        label: c"In",
        hint: c"First frame to collect",
        kind: ParamKind::Int {
            default: 0,
            min: 0,
            max: 10_000_000,
        },
    },
    ParamDef {
        name: c"out",
        label: c"Out",
        hint: c"Last frame to collect (inclusive)",
        kind: ParamKind::Int {
            default: 100,
            min: 0,
            max: 10_000_000,
        },
    },
    ParamDef {
        name: c"setIn",
        label: c"Set In to current frame",
        hint: c"",
        kind: ParamKind::Button,
    },
    ParamDef {
        name: c"setOut",
        label: c"Set Out to current frame",
        hint: c"",
        kind: ParamKind::Button,
    },
    ParamDef {
        name: c"modelSize",
        label: c"Model size",
        hint: c"Small trains on a CPU; DeepFaceLab's defaults (SAEHD DF) and Phaze-A's optimised model (EfficientNetV2 encoder, G-block) need a GPU",
        kind: ParamKind::Choice {
            options: &MODEL_SIZES_LABELS,
            default: 0,
        },
    },
    ParamDef {
        name: c"resolution",
        label: c"Resolution",
        hint: c"Face resolution in pixels (multiple of 16)",
        kind: ParamKind::Int {
            default: 64,
            min: 32,
            max: 512,
        },
    },
    ParamDef {
        name: c"steps",
        label: c"Steps",
        hint: c"Train until the model has this many steps",
        kind: ParamKind::Int {
            default: 2000,
            min: 1,
            max: 10_000_000,
        },
    },
    ParamDef {
        name: c"train",
        label: c"Train",
        hint: c"Queue a training job in faceswapd on the collected faces",
        kind: ParamKind::Button,
    },
    ParamDef {
        name: c"status",
        label: c"Status",
        hint: c"Collected faces, training progress",
        kind: ParamKind::Label,
    },
    ParamDef {
        name: c"refresh",
        label: c"Refresh",
        hint: c"Changes when a new checkpoint lands",
        kind: ParamKind::Hidden,
    },
    DEADLINE_PARAM,
    DEVICE_PARAM,
    INSTANCE_ID_DEF,
];

fn deadline(s: &Suites, effect: OfxImageEffectHandle, time: f64) -> Res<Duration> {
    Ok(Duration::from_millis(
        param_int(s, effect, c"deadlineMs", time)?.max(100) as u64,
    ))
}

/// Passes the source through; in a collect mode and inside [in, out], also sends the frame.
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
            copy_rows(image, dst, dst_stride);
            // Best effort: a host that refuses param changes here still gets its frame.
            let _ = show_status(s, effect);
            let side = match choice_value(&COLLECT, param_int(s, effect, c"collect", time)?) {
                "a" => Side::A,
                "b" => Side::B,
                _ => return Ok(()),
            };
            let frame = time.round().max(0.0) as i64;
            let (first, last) = (
                param_int(s, effect, c"in", time)? as i64,
                param_int(s, effect, c"out", time)? as i64,
            );
            if frame < first || frame > last {
                return Ok(());
            }
            let project = project_name(s, effect)?;
            let sent = with_link(s, effect, time, |link| {
                link.collect(image, &project, side, frame as u64, bottom_up)
            })?;
            match sent {
                Ok(_) => set_message(s, effect, None),
                Err(why) => set_message(s, effect, Some(&why)),
            }
            Ok(())
        },
    )
}

/// Buttons: set in/out to the current frame, or queue training and start the status thread.
pub(crate) fn instance_changed(
    s: &'static Suites,
    effect: OfxImageEffectHandle,
    in_args: OfxPropertySetHandle,
) -> Res<()> {
    let name = get_str(s, in_args, kOfxPropName)?;
    let time = get_double(s, in_args, kOfxPropTime).unwrap_or(0.0);
    // Best effort: a failed status update must not stop the button's own work.
    let _ = show_status(s, effect);
    match name.as_str() {
        "setIn" => set_param_int(s, effect, c"in", time.round() as c_int),
        "setOut" => set_param_int(s, effect, c"out", time.round() as c_int),
        "train" => start_training(s, effect, time),
        _ => Ok(()),
    }
}

fn train_settings(s: &Suites, effect: OfxImageEffectHandle, time: f64) -> Res<TrainSettings> {
    let resolution = (param_int(s, effect, c"resolution", time)?.clamp(32, 512) as u32) / 16 * 16;
    let steps = param_int(s, effect, c"steps", time)?.max(1) as u64;
    let base = TrainSettings {
        resolution,
        steps,
        save_every: (steps / 4).clamp(1, 500),
        preview_every: (steps / 4).clamp(1, 500),
        device: device_choice(s, effect, time)?,
        ..TrainSettings::default()
    };
    Ok(
        match choice_value(&MODEL_SIZES, param_int(s, effect, c"modelSize", time)?) {
            "small" => TrainSettings {
                ae_dims: 64,
                e_dims: 16,
                d_dims: 8,
                d_mask_dims: 4,
                batch: 6,
                lr: 5e-4,
                warmup: 20,
                ..base
            },
            "fspp" => TrainSettings {
                archi: "phaze-a:fspp-256".into(),
                ..base
            },
            _ => base,
        },
    )
}

/// Queues the job and starts the status thread; returns at once (the action must not block
/// the host's UI). The thread submits, then polls the project until the job ends or the
/// instance goes.
fn start_training(s: &'static Suites, effect: OfxImageEffectHandle, time: f64) -> Res<()> {
    let settings = train_settings(s, effect, time)?;
    let project = project_name(s, effect)?;
    let deadline = deadline(s, effect, time)?;
    let inst = instance(s, effect)?;
    let mut slot = inst.poller.lock().unwrap_or_else(|p| p.into_inner());
    // A running poller stops first (pressing Train again restarts training from the newest
    // checkpoint with the new settings).
    *slot = None;
    let stop = Arc::new(StopSignal::default());
    let stop_thread = Arc::clone(&stop);
    let socket = SocketPath::resolve().map_err(|_| kOfxStatFailed)?;
    set_param_string(s, effect, c"status", "Faceswap++: queueing training…")?;
    let started = background::spawn("fspp-trainer", move || {
        poll_training(&stop_thread, socket, deadline, &project, settings)
    });
    if !started {
        return Err(kOfxStatFailed);
    }
    *slot = Some(Poller { stop });
    Ok(())
}

/// The status thread: submits the job, then publishes the project's status every 250 ms.
/// Touches no host object; checks `stop` after every call to the daemon.
fn poll_training(
    stop: &StopSignal,
    socket: SocketPath,
    deadline: Duration,
    project: &str,
    settings: TrainSettings,
) {
    let mut link = DaemonLink::new(socket, deadline).with_autostart(true);
    let say = |text: String, checkpoint_step: Option<u64>| {
        publish(
            project,
            StatusLine {
                text,
                checkpoint_step,
            },
        )
    };
    let job = match link.call(&Request::TrainProject {
        project: project.to_string(),
        settings: Box::new(settings),
    }) {
        Ok(Response::JobSubmitted { id }) => id,
        Ok(_) => {
            return say(
                "Faceswap++: the daemon answered Train in a way this plug-in does not \
                 understand; install the same Faceswap++ release for the plug-in and the daemon"
                    .into(),
                None,
            );
        }
        Err(why) => return say(why, None),
    };
    let mut last_step = None;
    while !stop.is_stopped() {
        match link.call(&Request::ProjectStatus {
            project: project.to_string(),
        }) {
            Ok(Response::Project(report)) => {
                last_step = report.checkpoint_step.or(last_step);
                say(describe(&report, job), last_step);
                if report.job.as_ref().is_some_and(|j| j.state.is_final()) {
                    break;
                }
            }
            Ok(_) => {}
            Err(why) => say(why, last_step),
        }
        if stop.wait(Duration::from_millis(250)) {
            break;
        }
    }
}

/// The status line: collected counts, the job's progress, the newest checkpoint.
fn describe(r: &ProjectReport, job: u64) -> String {
    let mut text = format!("A: {} faces, B: {} faces", r.faces_a, r.faces_b);
    if let Some(j) = &r.job {
        text.push_str(&format!(
            "; job {job} {}: {}{} {}",
            j.state.name(),
            j.progress.done,
            j.progress.total.map_or(String::new(), |t| format!("/{t}")),
            j.progress.message
        ));
    }
    if let Some(step) = r.checkpoint_step {
        text.push_str(&format!("; checkpoint at step {step} in {}", r.model_dir));
    }
    text
}
