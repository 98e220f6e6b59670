//! The job queue: records persisted atomically in `<data>/jobs`, worker threads, cancel, resume,
//! and recovery after a crash (a job that was running comes back as interrupted).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faceswap_protocol::{ErrorCode, JobId, JobRecord, JobSpec, JobState, JobSummary, Progress};
use thiserror::Error;

use crate::atomic::write_atomic;
use crate::runtime::Runtime;
use faceswap_protocol::{TrainJob, XsegTrainJob};

const NO_STOP: u8 = 0;
const STOP_CANCEL: u8 = 1;
const STOP_SHUTDOWN: u8 = 2;
const PERSIST_EVERY: Duration = Duration::from_millis(500);

/// A job's work ended early or failed.
#[derive(Debug, Error)]
pub enum JobError {
    /// It saw the stop signal (cancel or shutdown) and stopped at a safe point.
    #[error("stopped")]
    Stopped,
    /// It failed; the message says what and what to do.
    #[error("{0}")]
    Failed(String),
}

/// A request about jobs was refused.
#[derive(Debug, Error)]
pub enum JobsError {
    /// No such job.
    #[error("no job {0} (see `faceswapd jobs list`)")]
    NotFound(JobId),
    /// Not possible in the job's state.
    #[error("{0}")]
    InvalidState(String),
    /// The job description is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl JobsError {
    /// The wire code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            JobsError::NotFound(_) => ErrorCode::NotFound,
            JobsError::InvalidState(_) | JobsError::ShuttingDown => ErrorCode::InvalidState,
            JobsError::InvalidInput(_) => ErrorCode::InvalidInput,
        }
    }
}

/// Runs one job's work.
pub type Runner = fn(&JobSpec, &JobContext) -> Result<(), JobError>;

/// Checks a spec before it is queued: what can be known without running it.
pub type Validator = fn(&JobSpec) -> Result<(), JobsError>;

/// What the queue knows of the stages: how to check a spec and how to run it. The daemon's
/// are in `crate::stages`; the queue itself knows no stage.
#[derive(Clone, Copy)]
pub struct JobHandlers {
    /// Refuses a spec that cannot run (bad paths, options) before it is queued.
    pub validate: Validator,
    /// Does the work.
    pub run: Runner,
}

struct State {
    records: BTreeMap<JobId, JobRecord>,
    next_id: JobId,
    stops: HashMap<JobId, Arc<AtomicU8>>,
    last_persist: HashMap<JobId, Instant>,
    shutting_down: bool,
}

struct Shared {
    dir: PathBuf,
    log_tail: usize,
    state: Mutex<State>,
    wake: Condvar,
    handlers: JobHandlers,
    runtime: Arc<Runtime>,
}

/// The queue and its workers.
pub struct JobManager {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn record_path(dir: &Path, id: JobId) -> PathBuf {
    dir.join(format!("job-{id:08}.toml"))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked while holding the lock leaves consistent-enough records.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, rec: &JobRecord) {
        let write = toml::to_string(rec)
            .map_err(std::io::Error::other)
            .and_then(|text| write_atomic(&record_path(&self.dir, rec.id), text.as_bytes()));
        if let Err(e) = write {
            // Disk full or similar: keep serving from memory, say so loudly.
            tracing::error!(
                job = rec.id,
                "cannot save job record in {}: {e}",
                self.dir.display()
            );
        }
    }

    fn push_log(&self, rec: &mut JobRecord, line: String) {
        tracing::info!(job = rec.id, "{line}");
        rec.log_tail.push(line);
        let excess = rec.log_tail.len().saturating_sub(self.log_tail);
        rec.log_tail.drain(..excess);
    }
}

impl JobManager {
    /// Opens the queue in `dir`, recovering records: a job left `running` by a crash becomes
    /// `interrupted`. Unreadable records are renamed `*.corrupt` and reported, never deleted.
    /// Jobs run with `runtime`'s config and device rule.
    pub fn open(
        dir: &Path,
        log_tail: usize,
        handlers: JobHandlers,
        runtime: Arc<Runtime>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        crate::atomic::remove_stale_temps(dir)?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<JobRecord>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(rec) => {
                    records.insert(rec.id, rec);
                }
                Err(e) => match crate::atomic::set_aside(&path) {
                    Ok(aside) => tracing::warn!(
                        "job record {} is unreadable ({e}); kept as {}",
                        path.display(),
                        aside.display()
                    ),
                    Err(why) => tracing::warn!(
                        "job record {} is unreadable ({e}) and could not be set aside ({why})",
                        path.display()
                    ),
                },
            }
        }
        let next_id = records.keys().next_back().map_or(1, |id| id + 1);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            log_tail: log_tail.max(1),
            state: Mutex::new(State {
                records,
                next_id,
                stops: HashMap::new(),
                last_persist: HashMap::new(),
                shutting_down: false,
            }),
            wake: Condvar::new(),
            handlers,
            runtime,
        });
        {
            let mut st = shared.lock();
            let now = now_unix();
            for rec in st.records.values_mut() {
                if rec.state == JobState::Running {
                    rec.state = JobState::Interrupted;
                    rec.updated_unix = now;
                    shared.push_log(
                        rec,
                        format!(
                            "the daemon stopped while this job ran; `faceswapd jobs resume {}` continues it",
                            rec.id
                        ),
                    );
                    shared.persist(rec);
                }
            }
        }
        Ok(JobManager {
            shared,
            workers: Mutex::new(Vec::new()),
        })
    }

    /// Starts `n` worker threads.
    pub fn start_workers(&self, n: u32) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..n.max(1) {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("job-worker-{i}"))
                .spawn(move || worker_loop(shared));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => tracing::error!("cannot start job worker {i}: {e}"),
            }
        }
    }

    /// Queues a new job.
    pub fn submit(&self, spec: JobSpec) -> Result<JobId, JobsError> {
        (self.shared.handlers.validate)(&spec)?;
        let mut st = self.shared.lock();
        if st.shutting_down {
            return Err(JobsError::ShuttingDown);
        }
        let id = st.next_id;
        st.next_id += 1;
        let now = now_unix();
        let rec = JobRecord {
            id,
            spec,
            state: JobState::Queued,
            progress: Progress::default(),
            created_unix: now,
            updated_unix: now,
            resumes: 0,
            error: None,
            log_tail: Vec::new(),
            device: None,
        };
        self.shared.persist(&rec);
        st.records.insert(id, rec);
        drop(st);
        self.shared.wake.notify_all();
        Ok(id)
    }

    /// All jobs, oldest first.
    pub fn list(&self) -> Vec<JobSummary> {
        self.shared
            .lock()
            .records
            .values()
            .map(JobSummary::from)
            .collect()
    }

    /// One job.
    pub fn get(&self, id: JobId) -> Result<JobRecord, JobsError> {
        self.shared
            .lock()
            .records
            .get(&id)
            .cloned()
            .ok_or(JobsError::NotFound(id))
    }

    /// `(queued, running)` counts.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.shared.lock();
        let count = |s| st.records.values().filter(|r| r.state == s).count() as u32;
        (count(JobState::Queued), count(JobState::Running))
    }

    /// Cancels a queued job at once, or asks a running one to stop at its next safe point.
    pub fn cancel(&self, id: JobId) -> Result<(), JobsError> {
        let mut st = self.shared.lock();
        let stop = st.stops.get(&id).cloned();
        let rec = st.records.get_mut(&id).ok_or(JobsError::NotFound(id))?;
        match rec.state {
            JobState::Queued => {
                rec.state = JobState::Cancelled;
                rec.updated_unix = now_unix();
                self.shared
                    .push_log(rec, "cancelled before it started".into());
                self.shared.persist(rec);
                Ok(())
            }
            JobState::Running => {
                if let Some(stop) = stop {
                    stop.store(STOP_CANCEL, Ordering::SeqCst);
                }
                Ok(())
            }
            s => Err(JobsError::InvalidState(format!(
                "job {id} is {}; only queued or running jobs can be cancelled",
                s.name()
            ))),
        }
    }

    /// Re-queues a failed, cancelled or interrupted job.
    pub fn resume(&self, id: JobId) -> Result<(), JobsError> {
        let mut st = self.shared.lock();
        if st.shutting_down {
            return Err(JobsError::ShuttingDown);
        }
        let rec = st.records.get_mut(&id).ok_or(JobsError::NotFound(id))?;
        if !rec.state.is_resumable() {
            return Err(JobsError::InvalidState(format!(
                "job {id} is {}; only failed, cancelled or interrupted jobs can be resumed",
                rec.state.name()
            )));
        }
        rec.state = JobState::Queued;
        rec.resumes += 1;
        rec.error = None;
        rec.updated_unix = now_unix();
        let n = rec.resumes;
        self.shared.push_log(rec, format!("resumed (resume #{n})"));
        self.shared.persist(rec);
        drop(st);
        self.shared.wake.notify_all();
        Ok(())
    }

    /// Stops the workers: running jobs stop at their next safe point and become interrupted.
    pub fn shutdown(&self) {
        {
            let mut st = self.shared.lock();
            st.shutting_down = true;
            for stop in st.stops.values() {
                stop.store(STOP_SHUTDOWN, Ordering::SeqCst);
            }
        }
        self.shared.wake.notify_all();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

fn worker_loop(shared: Arc<Shared>) {
    loop {
        let (id, spec, stop) = {
            let mut st = shared.lock();
            loop {
                if st.shutting_down {
                    return;
                }
                let next = st
                    .records
                    .values()
                    .find(|r| r.state == JobState::Queued)
                    .map(|r| r.id);
                if let Some(id) = next {
                    let stop = Arc::new(AtomicU8::new(NO_STOP));
                    st.stops.insert(id, Arc::clone(&stop));
                    let Some(rec) = st.records.get_mut(&id) else {
                        continue;
                    };
                    rec.state = JobState::Running;
                    rec.updated_unix = now_unix();
                    shared.push_log(rec, "started".into());
                    shared.persist(rec);
                    break (id, rec.spec.clone(), stop);
                }
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let ctx = JobContext {
            id,
            stop: Arc::clone(&stop),
            shared: Arc::clone(&shared),
        };
        let runner = shared.handlers.run;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner(&spec, &ctx)))
            .unwrap_or_else(|panic| Err(crash_error(&spec, panic.as_ref())));
        faceswap_models::conv::release_scratch();
        crate::memory::release_freed_memory();
        let mut st = shared.lock();
        st.stops.remove(&id);
        st.last_persist.remove(&id);
        let Some(rec) = st.records.get_mut(&id) else {
            continue;
        };
        rec.updated_unix = now_unix();
        let (state, line) = match result {
            Ok(()) => (JobState::Done, "done".to_string()),
            Err(JobError::Stopped) if stop.load(Ordering::SeqCst) == STOP_CANCEL => {
                (JobState::Cancelled, "cancelled".into())
            }
            Err(JobError::Stopped) => (
                JobState::Interrupted,
                format!(
                    "interrupted by daemon shutdown; `faceswapd jobs resume {id}` continues it"
                ),
            ),
            Err(JobError::Failed(msg)) => {
                rec.error = Some(msg.clone());
                (JobState::Failed, format!("failed: {msg}"))
            }
        };
        rec.state = state;
        shared.push_log(rec, line);
        shared.persist(rec);
    }
}

/// What a running job uses to report progress and notice a stop request.
pub struct JobContext {
    id: JobId,
    stop: Arc<AtomicU8>,
    shared: Arc<Shared>,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The daemon's folders, config and device rule.
    pub fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    /// True once the job was cancelled or the daemon is stopping: return [`JobError::Stopped`]
    /// at the next safe point.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != NO_STOP
    }

    /// Records progress (persisted at most every 500 ms, and always at the end).
    pub fn progress(&self, done: u64, total: Option<u64>, message: &str) {
        let mut st = self.shared.lock();
        let due = st
            .last_persist
            .get(&self.id)
            .is_none_or(|t| t.elapsed() >= PERSIST_EVERY)
            || total == Some(done);
        let Some(rec) = st.records.get_mut(&self.id) else {
            return;
        };
        rec.progress = Progress {
            done,
            total,
            message: message.to_string(),
        };
        if due {
            rec.updated_unix = now_unix();
            self.shared.persist(rec);
            st.last_persist.insert(self.id, Instant::now());
        }
    }

    /// Records the compute device the job runs on (shown by `jobs` and `jobs show`).
    pub fn ran_on(&self, device: &str) {
        let mut st = self.shared.lock();
        if let Some(rec) = st.records.get_mut(&self.id) {
            rec.device = Some(device.to_string());
            self.shared.persist(rec);
        }
    }

    /// Appends a line to the job's log tail (and the daemon log).
    pub fn log(&self, line: impl Into<String>) {
        let mut st = self.shared.lock();
        if let Some(rec) = st.records.get_mut(&self.id) {
            self.shared.push_log(rec, line.into());
            self.shared.persist(rec);
        }
    }
}

/// The error of a job that panicked. A GPU backend panics when the device runs out of memory:
/// that is the user's to fix (a smaller batch or resolution), so it says how; anything else is
/// a bug.
fn crash_error(spec: &JobSpec, panic: &(dyn std::any::Any + Send)) -> JobError {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let lower = text.to_lowercase();
    let out_of_memory = [
        "out of memory",
        "out-of-memory",
        "out of device memory",
        "outofmemory",
    ]
    .iter()
    .any(|m| lower.contains(m));
    if !out_of_memory {
        return JobError::Failed("the job crashed (a bug; see the daemon log)".into());
    }
    let fix = match spec {
        JobSpec::Train(TrainJob { settings, .. }) => format!(
            "lower --batch (now {}) or --resolution (now {}), or use --micro-batches / --precision bf16; or train on another device (--device)",
            settings.batch, settings.resolution
        ),
        JobSpec::XsegTrain(XsegTrainJob { settings, .. }) => format!(
            "lower --batch (now {}) or --resolution (now {}), or train on another device (--device)",
            settings.batch, settings.resolution
        ),
        _ => "close what else uses the GPU, or run it on another device (--device cpu)".into(),
    };
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    JobError::Failed(format!(
        "the device ran out of memory ({}): {fix}",
        first_line.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_for_device_memory_names_the_settings_to_lower() {
        let spec = JobSpec::Train(TrainJob {
            faceset_a: "a".into(),
            faceset_b: "b".into(),
            model_dir: "m".into(),
            settings: Box::new(faceswap_protocol::TrainSettings {
                batch: 16,
                resolution: 256,
                ..Default::default()
            }),
        });
        let oom: Box<dyn std::any::Any + Send> =
            Box::new("out of device memory allocating 1073741824 bytes\nbacktrace…".to_string());
        let err = crash_error(&spec, oom.as_ref()).to_string();
        assert!(err.contains("ran out of memory"), "{err}");
        assert!(
            err.contains("--batch (now 16)") && err.contains("(now 256)"),
            "{err}"
        );
        assert!(!err.contains("backtrace"), "{err}");
        let bug: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        let err = crash_error(&spec, bug.as_ref()).to_string();
        assert!(err.contains("a bug"), "{err}");
    }

    fn spec(dir: &Path) -> JobSpec {
        let input = dir.join("in.mp4");
        std::fs::write(&input, b"x").unwrap();
        JobSpec::ExtractFrames(faceswap_protocol::ExtractFramesJob {
            input: input.display().to_string(),
            output_dir: dir.join("out").display().to_string(),
            every_nth: 1,
        })
    }

    /// Counts to 50, 20 ms a step, stopping when asked.
    fn slow_runner(_: &JobSpec, ctx: &JobContext) -> Result<(), JobError> {
        for i in 0..50 {
            if ctx.should_stop() {
                return Err(JobError::Stopped);
            }
            ctx.progress(i, Some(50), "counting");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn failing_runner(_: &JobSpec, _: &JobContext) -> Result<(), JobError> {
        Err(JobError::Failed("input is not a video".into()))
    }

    /// The queue's part of validation: whatever the validator refuses is never queued.
    fn refuse_relative(spec: &JobSpec) -> Result<(), JobsError> {
        match spec {
            JobSpec::ExtractFrames(faceswap_protocol::ExtractFramesJob { input, .. })
                if !Path::new(input).is_absolute() =>
            {
                Err(JobsError::InvalidInput(format!("{input} is relative")))
            }
            _ => Ok(()),
        }
    }

    fn runtime(root: &Path) -> Arc<Runtime> {
        let dirs = crate::paths::Dirs {
            data: root.join("data"),
            cache: root.join("cache"),
            config: root.join("config"),
        };
        Runtime::new(dirs, crate::config::Config::default())
    }

    fn handlers(run: Runner) -> JobHandlers {
        JobHandlers {
            validate: refuse_relative,
            run,
        }
    }

    fn wait_for(m: &JobManager, id: JobId, state: JobState) -> JobRecord {
        for _ in 0..500 {
            let r = m.get(id).unwrap();
            if r.state == state {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("job {id} never reached {state:?}: {:?}", m.get(id));
    }

    #[test]
    fn runs_cancels_resumes_and_recovers_running_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        let m = JobManager::open(&jobs, 5, handlers(slow_runner), runtime(&jobs)).unwrap();
        m.start_workers(1);
        let a = m.submit(spec(dir.path())).unwrap();
        let b = m.submit(spec(dir.path())).unwrap();
        wait_for(&m, a, JobState::Running);
        m.cancel(b).unwrap();
        assert_eq!(m.get(b).unwrap().state, JobState::Cancelled);
        m.cancel(a).unwrap();
        wait_for(&m, a, JobState::Cancelled);
        assert!(
            m.cancel(a).is_err(),
            "a cancelled job cannot be cancelled again"
        );
        m.resume(a).unwrap();
        let done = wait_for(&m, a, JobState::Done);
        assert_eq!(done.resumes, 1);
        assert!(done.log_tail.len() <= 5);
        m.resume(b).unwrap();
        wait_for(&m, b, JobState::Running);
        m.shutdown();
        assert_eq!(m.get(b).unwrap().state, JobState::Interrupted);

        // Simulate a crash: a record still says running.
        let mut rec = m.get(b).unwrap();
        rec.state = JobState::Running;
        std::fs::write(record_path(&jobs, b), toml::to_string(&rec).unwrap()).unwrap();
        std::fs::write(jobs.join("job-00000099.toml"), "not = [valid").unwrap();
        let m2 = JobManager::open(&jobs, 5, handlers(slow_runner), runtime(&jobs)).unwrap();
        assert_eq!(m2.get(b).unwrap().state, JobState::Interrupted);
        assert_eq!(m2.get(a).unwrap().state, JobState::Done);
        assert!(jobs.join("job-00000099.toml.corrupt").exists());
        assert_eq!(m2.submit(spec(dir.path())).unwrap(), b + 1);
    }

    #[test]
    fn failures_are_recorded_and_bad_specs_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = JobManager::open(
            &dir.path().join("jobs"),
            5,
            handlers(failing_runner),
            runtime(dir.path()),
        )
        .unwrap();
        m.start_workers(1);
        let id = m.submit(spec(dir.path())).unwrap();
        let rec = wait_for(&m, id, JobState::Failed);
        assert_eq!(rec.error.as_deref(), Some("input is not a video"));
        let bad = JobSpec::ExtractFrames(faceswap_protocol::ExtractFramesJob {
            input: "relative.mp4".into(),
            output_dir: "/tmp".into(),
            every_nth: 1,
        });
        assert!(matches!(m.submit(bad), Err(JobsError::InvalidInput(_))));
        assert!(matches!(m.get(999), Err(JobsError::NotFound(999))));
        m.shutdown();
    }
}
