//! `faceswapd serve`: the local-socket service.
//!
//! One thread per connection (clients are few: an editor's plugin instances and CLI calls).
//! A connection that sends garbage, stalls or overflows the size limit is answered or dropped on
//! its own thread; the accept loop and every other connection carry on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use faceswap_protocol::framing::read_frame_bytes;
use faceswap_protocol::handshake::server_handshake;
use faceswap_protocol::{
    DaemonStatus, ErrorCode, ErrorReply, FrameOp, FrameSlot, PixelFormat, ProtocolError, Request,
    Response, SocketPath, Welcome, decode_payload, error_response, write_frame,
};
use interprocess::local_socket::{ListenerOptions, Stream, prelude::*};

use crate::config::Config;
use crate::jobs::JobManager;
use crate::lock::InstanceLock;
use crate::paths::Dirs;

/// Slots a connection may keep mapped at once (each plugin instance uses one or two).
const MAX_SLOTS_PER_CONNECTION: usize = 8;

struct Service {
    cfg: Config,
    jobs: JobManager,
    started: Instant,
    connections: AtomicU32,
    shutdown: AtomicBool,
    slot_dir: PathBuf,
    socket: SocketPath,
    data_dir: PathBuf,
    device: String,
    /// The swap effect's loaded extractor and models (one render at a time uses them).
    swapper: std::sync::Mutex<crate::merge::render::FrameSwapper>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon holds the lock.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// Socket, folder or job store problem.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Runtime folder problem.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// The lock file that guards `socket`.
pub fn lock_path(socket: &SocketPath) -> PathBuf {
    let mut p = socket.path().as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Runs the service until SIGTERM/SIGINT or a `Shutdown` request.
pub fn serve(cfg: Config, dirs: &Dirs, socket: SocketPath) -> Result<(), ServeError> {
    #[cfg(unix)]
    if let Some(parent) = socket.path().parent() {
        faceswap_protocol::locations::ensure_private_dir(parent)?;
    }
    let lock = InstanceLock::acquire(&lock_path(&socket))?;
    // Holding the lock means any socket file left here belongs to a dead daemon.
    #[cfg(unix)]
    if socket.path().exists() {
        tracing::info!("removing stale socket {}", socket);
        std::fs::remove_file(socket.path())
            .map_err(io_err(format!("removing stale socket {socket}")))?;
    }
    let slot_dir = socket.slot_dir()?;
    // Built once: jobs and the plug-in's renders share its config and device rule.
    let runtime = crate::runtime::Runtime::new(dirs.clone(), cfg.clone());
    let jobs = JobManager::open(
        &dirs.jobs(),
        cfg.jobs.log_tail_lines as usize,
        crate::stages::HANDLERS,
        Arc::clone(&runtime),
    )
    .map_err(io_err(format!(
        "opening the job store {}",
        dirs.jobs().display()
    )))?;
    let name = socket
        .to_name()
        .map_err(io_err(format!("socket name {socket}")))?;
    let listener = ListenerOptions::new()
        .name(name)
        .create_sync()
        .map_err(io_err(format!("listening on {socket}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(format!("restricting {socket} to its owner")))?;
    }
    let (render_device, unusable) = runtime.render_device();
    // Jobs choose their own device; status shows the one renders use, and why it is the cpu
    // when the configured one cannot be used.
    let device = match unusable {
        None => render_device.to_string(),
        Some(why) => format!("{render_device} ({} unusable: {why})", cfg.compute.device),
    };
    let workers = cfg.jobs.workers;
    let service = Arc::new(Service {
        cfg,
        jobs,
        started: Instant::now(),
        connections: AtomicU32::new(0),
        shutdown: AtomicBool::new(false),
        slot_dir,
        socket: socket.clone(),
        data_dir: dirs.data.clone(),
        swapper: std::sync::Mutex::new(crate::merge::render::FrameSwapper::new(
            render_device,
            runtime,
        )),
        device,
    });
    service.jobs.start_workers(workers);
    {
        let service = Arc::clone(&service);
        if let Err(e) = ctrlc::set_handler(move || request_shutdown(&service)) {
            tracing::warn!("cannot install the SIGTERM/SIGINT handler: {e}");
        }
    }
    tracing::info!(
        pid = std::process::id(),
        "faceswapd {} listening on {} (lock {}, device {})",
        env!("CARGO_PKG_VERSION"),
        socket,
        lock.path().display(),
        service.device
    );
    for conn in listener.incoming() {
        if service.shutdown.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                let service = Arc::clone(&service);
                let spawned = std::thread::Builder::new()
                    .name("connection".into())
                    .spawn(move || handle_connection(&service, stream));
                if let Err(e) = spawned {
                    tracing::error!("cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    tracing::info!("shutting down: stopping jobs");
    service.jobs.shutdown();
    drop(listener);
    tracing::info!("stopped");
    drop(lock);
    Ok(())
}

fn request_shutdown(service: &Service) {
    if service.shutdown.swap(true, Ordering::SeqCst) {
        return;
    }
    // Wake the accept loop with a throwaway connection.
    let _ = faceswap_protocol::transport::connect_raw(&service.socket, Duration::from_secs(1));
}

struct ConnectionGuard<'a>(&'a AtomicU32);
impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle_connection(service: &Service, mut stream: Stream) {
    let open = service.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = ConnectionGuard(&service.connections);
    if service.shutdown.load(Ordering::SeqCst) {
        return;
    }
    let handshake_timeout = Duration::from_millis(service.cfg.daemon.handshake_timeout_ms);
    let _ = stream.set_recv_timeout(Some(handshake_timeout));
    let _ = stream.set_send_timeout(Some(handshake_timeout));
    #[cfg(unix)]
    if let Ok(creds) = stream.peer_creds() {
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { libc::getuid() };
        if creds.euid().is_some_and(|uid| uid != me) {
            tracing::warn!("refusing a connection from uid {:?}", creds.euid());
            return;
        }
    }
    let reply = if open > service.cfg.daemon.max_connections {
        Err(ErrorReply {
            code: ErrorCode::Busy,
            message: format!(
                "faceswapd is serving its maximum of {} connections; try again shortly",
                service.cfg.daemon.max_connections
            ),
        })
    } else {
        Ok(Welcome {
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
        })
    };
    let hello = match server_handshake(&mut stream, reply) {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!("handshake failed: {e}");
            return;
        }
    };
    tracing::debug!(client = ?hello.client, version = %hello.client_version, "client connected");
    let idle = Duration::from_secs(service.cfg.daemon.idle_timeout_s.max(1));
    let _ = stream.set_recv_timeout(Some(idle));
    let mut slots: HashMap<PathBuf, FrameSlot> = HashMap::new();
    loop {
        let body = match read_frame_bytes(&mut stream) {
            Ok(b) => b,
            Err(ProtocolError::Disconnected) => return,
            Err(e @ ProtocolError::TooLarge { .. }) => {
                // The oversize body is still in the pipe: answer, then drop the connection.
                let _ = write_frame(&mut stream, &error_response(e.code(), e.to_string()));
                tracing::warn!("dropping a client: {e}");
                return;
            }
            Err(e) => {
                tracing::debug!("dropping a client: {e}");
                return;
            }
        };
        let response = match decode_payload::<Request>(&body) {
            Ok(Request::Shutdown) => {
                let _ = write_frame(&mut stream, &Response::Ok);
                request_shutdown(service);
                return;
            }
            Ok(req) => dispatch(service, req, &mut slots),
            // Framing is intact, so the connection can go on after a bad message.
            Err(e) => error_response(ErrorCode::Malformed, e.to_string()),
        };
        if let Err(e) = write_frame(&mut stream, &response) {
            tracing::debug!("client went away: {e}");
            return;
        }
    }
}

fn dispatch(service: &Service, req: Request, slots: &mut HashMap<PathBuf, FrameSlot>) -> Response {
    let jobs_err = |e: crate::jobs::JobsError| error_response(e.code(), e.to_string());
    match req {
        Request::Status => {
            let (queued, running) = service.jobs.counts();
            Response::Status(DaemonStatus {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                uptime_s: service.started.elapsed().as_secs(),
                connections: service.connections.load(Ordering::SeqCst),
                queued_jobs: queued,
                running_jobs: running,
                data_dir: service.data_dir.display().to_string(),
                device: service.device.clone(),
            })
        }
        Request::ListJobs => Response::Jobs(service.jobs.list()),
        Request::ShowJob { id } => match service.jobs.get(id) {
            Ok(r) => Response::Job(Box::new(r)),
            Err(e) => jobs_err(e),
        },
        Request::SubmitJob { spec } => match service.jobs.submit(spec) {
            Ok(id) => Response::JobSubmitted { id },
            Err(e) => jobs_err(e),
        },
        Request::CancelJob { id } => service
            .jobs
            .cancel(id)
            .map_or_else(jobs_err, |_| Response::Ok),
        Request::ResumeJob { id } => service
            .jobs
            .resume(id)
            .map_or_else(jobs_err, |_| Response::Ok),
        Request::ProcessFrame { slot, op } => {
            match process_frame(service, slots, Path::new(&slot), op) {
                Ok(hash) => Response::FrameDone { content_hash: hash },
                Err(FrameError::Protocol(e)) => error_response(e.code(), e.to_string()),
                Err(FrameError::Swap(m)) => error_response(ErrorCode::InvalidInput, m),
            }
        }
        Request::Shutdown => Response::Ok,
        Request::CollectFrame {
            project,
            side,
            frame,
            slot,
            bottom_up,
        } => match collect_frame(
            service,
            slots,
            &project,
            side,
            frame,
            Path::new(&slot),
            bottom_up,
        ) {
            Ok(faces) => Response::Collected { faces },
            Err(FrameError::Protocol(e)) => error_response(e.code(), e.to_string()),
            Err(FrameError::Swap(m)) => error_response(ErrorCode::InvalidInput, m),
        },
        Request::TrainProject { project, settings } => {
            match crate::project::project_dir(&service.data_dir, &project)
                .and_then(|dir| crate::project::train(&service.jobs, &dir, *settings))
            {
                Ok(id) => Response::JobSubmitted { id },
                Err(m) => error_response(ErrorCode::InvalidInput, m),
            }
        }
        Request::ProjectStatus { project } => {
            match crate::project::project_dir(&service.data_dir, &project) {
                Ok(dir) => match crate::project::status(&service.jobs, &dir) {
                    Ok(report) => Response::Project(Box::new(report)),
                    Err(m) => error_response(ErrorCode::InvalidInput, m),
                },
                Err(m) => error_response(ErrorCode::InvalidInput, m),
            }
        }
    }
}

/// Why a frame request failed: the slot or transport, or the swap itself (no model, …).
enum FrameError {
    Protocol(ProtocolError),
    Swap(String),
}

impl From<ProtocolError> for FrameError {
    fn from(e: ProtocolError) -> Self {
        FrameError::Protocol(e)
    }
}

/// The slot at `path`, opened (and checked to lie in the slot folder) on first use.
fn open_slot<'a>(
    service: &Service,
    slots: &'a mut HashMap<PathBuf, FrameSlot>,
    path: &Path,
) -> Result<&'a mut FrameSlot, ProtocolError> {
    if !slots.contains_key(path) {
        if slots.len() >= MAX_SLOTS_PER_CONNECTION {
            // Slots are per render instance; an old one is most likely gone.
            slots.retain(|p, _| p.exists());
            if slots.len() >= MAX_SLOTS_PER_CONNECTION {
                return Err(ProtocolError::Slot(format!(
                    "more than {MAX_SLOTS_PER_CONNECTION} slots on one connection"
                )));
            }
        }
        let slot = FrameSlot::open(path, &service.slot_dir)?;
        slots.insert(path.to_path_buf(), slot);
    }
    slots
        .get_mut(path)
        .ok_or_else(|| ProtocolError::Slot("slot vanished".into()))
}

/// Faces of the frame in a slot, added to an editor project's side.
fn collect_frame(
    service: &Service,
    slots: &mut HashMap<PathBuf, FrameSlot>,
    project: &str,
    side: faceswap_protocol::Side,
    frame: u64,
    path: &Path,
    bottom_up: bool,
) -> Result<u32, FrameError> {
    let dir = crate::project::project_dir(&service.data_dir, project).map_err(FrameError::Swap)?;
    let slot = open_slot(service, slots, path)?;
    let h = slot.verify()?;
    let rgb = crate::merge::render::to_rgb8(slot.pixels(&h), &h, bottom_up);
    let mut tools = service
        .swapper
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let extractor = tools.extractor().map_err(FrameError::Swap)?;
    crate::project::collect(extractor, &dir, side, frame, rgb).map_err(FrameError::Swap)
}

fn process_frame(
    service: &Service,
    slots: &mut HashMap<PathBuf, FrameSlot>,
    path: &Path,
    op: FrameOp,
) -> Result<u64, FrameError> {
    let slot = open_slot(service, slots, path)?;
    match op {
        FrameOp::Passthrough => Ok(slot.header()?.content_hash),
        FrameOp::Verify => Ok(slot.verify()?.content_hash),
        FrameOp::Invert => {
            let format = slot.header()?.format;
            Ok(slot
                .transform_sealed(|px| invert_colours(px, format))?
                .content_hash)
        }
        FrameOp::Swap(mut settings) => {
            // Words for the editor: these messages become the effect's persistent message.
            if let Some(project) = &settings.project {
                let dir = crate::project::model_dir(&service.data_dir, project)
                    .map_err(FrameError::Swap)?;
                settings.model_dir = dir.display().to_string();
            } else if settings.model_dir.trim().is_empty() {
                return Err(FrameError::Swap(
                    "no model chosen: set the effect's Model folder or its Trainer project".into(),
                ));
            }
            let h = slot.verify()?;
            let px = slot.pixels_mut(&h);
            let mut swapper = service
                .swapper
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let report = swapper.swap(px, &h, &settings).map_err(|why| {
                // Only on failure: a project whose model has no checkpoint is not trained yet.
                match &settings.project {
                    Some(project)
                        if !crate::checkpoint::has_any(Path::new(&settings.model_dir)) =>
                    {
                        FrameError::Swap(format!(
                            "project {project} has no trained model yet: press Train on a \
                             Faceswap Trainer set to project {project}"
                        ))
                    }
                    _ => FrameError::Swap(why),
                }
            })?;
            tracing::debug!(?report, "swapped a frame");
            Ok(slot.seal()?)
        }
    }
}

/// Inverts R, G, B (keeping alpha) of every pixel of a run of whole pixels; floats are
/// inverted around 1.0.
fn invert_colours(px: &mut [u8], format: PixelFormat) {
    let bpp = format.bytes_per_pixel();
    // The format is matched once per run, not per pixel, so each loop stays simple to vectorise.
    let pixels = px.chunks_exact_mut(bpp);
    match format {
        PixelFormat::Rgba8 => pixels.for_each(|p| p[..3].iter_mut().for_each(|c| *c = 255 - *c)),
        PixelFormat::Rgba16 => pixels.for_each(|p| {
            for c in p[..6].chunks_exact_mut(2) {
                let v = u16::MAX - u16::from_le_bytes([c[0], c[1]]);
                c.copy_from_slice(&v.to_le_bytes());
            }
        }),
        PixelFormat::RgbaF16 => pixels.for_each(|p| {
            for c in p[..6].chunks_exact_mut(2) {
                let v = 1.0 - f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
                c.copy_from_slice(&f32_to_f16(v).to_le_bytes());
            }
        }),
        PixelFormat::RgbaF32 => pixels.for_each(|p| {
            for c in p[..12].chunks_exact_mut(4) {
                let v = 1.0 - f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                c.copy_from_slice(&v.to_le_bytes());
            }
        }),
    }
}

fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

fn f32_to_f16(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}
