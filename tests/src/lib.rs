//! Harness for end-to-end tests and benches: real `faceswapd` processes in isolated per-test
//! folders (data, config, cache, runtime, socket), driven over the real socket.

pub mod architecture;
pub mod ofx_host;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use faceswap_protocol::{
    ClientKind, Connection, JobId, JobRecord, JobState, Request, Response, SocketPath,
};
use faceswapd::paths::Dirs;

/// A daemon process under test, with its own folders.
pub struct DaemonUnderTest {
    bin: PathBuf,
    root: PathBuf,
    /// The daemon's socket.
    pub socket: SocketPath,
    child: Option<Child>,
}

impl DaemonUnderTest {
    /// The socket of a daemon started with `root`.
    pub fn socket_under(root: &Path) -> SocketPath {
        SocketPath::new(root.join("run").join("faceswapd.sock"))
    }

    /// Starts a daemon whose every folder lives under `root` (created if needed).
    pub fn start(bin: &Path, root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        let mut d = DaemonUnderTest {
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            socket: Self::socket_under(root),
            child: None,
        };
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.command();
        // Into a file, not a pipe: a pipe nobody reads fills after some 64 KiB of debug log
        // and the daemon then blocks on its next log line.
        std::fs::create_dir_all(&self.root)?;
        let stderr_path = self.root.join("faceswapd.stderr");
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&stderr_path)?;
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = cmd.spawn().context("starting faceswapd")?;
        let start = Instant::now();
        loop {
            if Connection::connect(&self.socket, ClientKind::Test, Duration::from_secs(5)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                bail!("faceswapd exited early ({status}): {err}");
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                bail!("faceswapd did not open {} in 30 s", self.socket);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// A command for the binary with this daemon's isolated environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("XDG_DATA_HOME", self.root.join("data"))
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("XDG_CACHE_HOME", self.root.join("cache"))
            .env("XDG_RUNTIME_DIR", self.root.join("xdg-run"))
            .env("FACESWAPD_SOCKET", self.socket.path())
            .env_remove("FACESWAPD_CONFIG")
            .env("FACESWAPD_LOG", "debug");
        cmd
    }

    /// Runs a CLI subcommand against this daemon.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(self.command().args(args).output()?)
    }

    /// Runs a CLI command and checks that the work went through a daemon job of `kind`: the
    /// command says it queued job N, succeeds, and `jobs list` shows job N of that kind done.
    /// Returns the command's stdout.
    pub fn cli_job(&self, args: &[&str], kind: &str) -> anyhow::Result<String> {
        let out = self.cli(args)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "{args:?} failed: {text}{err}");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("job ")?.split_once(" queued"))
            .map(|(id, _)| id.to_string())
            .ok_or_else(|| anyhow::anyhow!("{args:?} queued no job: {text}"))?;
        let list = self.cli(&["jobs", "list"])?;
        let list = String::from_utf8_lossy(&list.stdout).into_owned();
        let row: Vec<&str> = list
            .lines()
            .map(str::split_whitespace)
            .find_map(|mut cols| (cols.next() == Some(id.as_str())).then(|| cols.collect()))
            .ok_or_else(|| anyhow::anyhow!("job {id} is not listed: {list}"))?;
        anyhow::ensure!(
            row.first() == Some(&kind) && row.get(1) == Some(&"done"),
            "job {id} is {row:?}, not a finished {kind} job"
        );
        Ok(text)
    }

    /// The daemon's folders as it sees them.
    pub fn dirs(&self) -> Dirs {
        Dirs {
            data: self.root.join("data").join("faceswappp"),
            cache: self.root.join("cache").join("faceswappp"),
            config: self.root.join("config").join("faceswappp"),
        }
    }

    /// A new handshaken connection.
    pub fn connect(&self) -> anyhow::Result<Connection> {
        Ok(Connection::connect(
            &self.socket,
            ClientKind::Test,
            Duration::from_secs(10),
        )?)
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Freezes the daemon (SIGSTOP): it keeps its socket but answers nothing, as a hung one.
    #[cfg(unix)]
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// Lets a frozen daemon run again (SIGCONT).
    #[cfg(unix)]
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)
    }

    #[cfg(unix)]
    fn signal(&self, sig: libc::c_int) -> anyhow::Result<()> {
        let pid = self.pid().context("daemon not running")?;
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
            bail!(
                "signal {sig} to pid {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no clean-up of any kind.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts the daemon again on the same folders.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        self.spawn()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let start = Instant::now();
        let child = self.child.as_mut().context("daemon not running")?;
        loop {
            if let Some(s) = child.try_wait()? {
                self.child = None;
                return Ok(s);
            }
            if start.elapsed() > timeout {
                bail!("daemon did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DaemonUnderTest {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// The editor path for benches: the release bundle in `root/plugins`, a daemon (`bin`) in
/// `root/daemon` with the extractor models, the plug-in pointed at it through
/// `FACESWAPD_SOCKET`, and the test host with the bundle loaded.
///
/// # Safety
/// Sets an environment variable for the whole process: call it before any other thread runs.
pub unsafe fn start_release_editor(
    root: &Path,
    bin: &Path,
) -> anyhow::Result<(DaemonUnderTest, ofx_host::OfxTestHost)> {
    let plugins = root.join("plugins");
    bundle_plugin(&plugins, true)?;
    let daemon_root = root.join("daemon");
    share_extractor_models(&daemon_root)?;
    let d = DaemonUnderTest::start(bin, &daemon_root)?;
    // SAFETY: the caller's promise: no other thread reads the environment meanwhile.
    unsafe { std::env::set_var("FACESWAPD_SOCKET", d.socket.path()) };
    let host = ofx_host::OfxTestHost::load(&plugins.display().to_string())?;
    Ok((d, host))
}

/// Threads of this process whose name starts with `prefix` (Linux: `/proc/self/task/*/comm`,
/// names cut at 15 bytes).
pub fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .count()
}

/// Checks `done` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Set in a test's own child process (see [`run_in_child_process`]).
const CHILD_ENV: &str = "FSPP_TEST_CHILD_PROCESS";

/// True inside a process started by [`run_in_child_process`].
pub fn in_child_process() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs test `name` of this test binary alone in a new process whose environment has `envs`
/// from its start: a test that needs process-wide settings (the plug-in reads its socket from
/// the environment) gets them without `set_var` racing its sibling tests. Fails when it fails.
pub fn run_in_child_process(name: &str, envs: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let status = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .envs(envs.iter().copied())
        .status()
        .context("starting the test's own process")?;
    if !status.success() {
        bail!("{name} failed in its own process ({status})");
    }
    Ok(())
}

/// Fetches a job record.
pub fn job(c: &mut Connection, id: JobId) -> anyhow::Result<JobRecord> {
    match c.call(&Request::ShowJob { id })? {
        Response::Job(r) => Ok(*r),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// Polls a job until `pred` holds (or the timeout passes).
pub fn wait_job(
    c: &mut Connection,
    id: JobId,
    timeout: Duration,
    pred: impl Fn(&JobRecord) -> bool,
) -> anyhow::Result<JobRecord> {
    let start = Instant::now();
    loop {
        let r = job(c, id)?;
        if pred(&r) {
            return Ok(r);
        }
        if start.elapsed() > timeout {
            bail!("job {id} did not reach the expected state in {timeout:?}: {r:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until a job runs in this daemon (its record says running, so a kill now leaves it
/// interrupted) with at least `steps` done, or has finished; progress from before a restart
/// alone does not count.
pub fn wait_running_past(c: &mut Connection, id: JobId, steps: u64) -> anyhow::Result<JobRecord> {
    wait_job(c, id, Duration::from_secs(60), |r| {
        r.state == JobState::Done || (r.state == JobState::Running && r.progress.done >= steps)
    })
}

/// Waits until a job reaches `state`.
pub fn wait_state(
    c: &mut Connection,
    id: JobId,
    state: JobState,
    timeout: Duration,
) -> anyhow::Result<JobRecord> {
    wait_job(c, id, timeout, |r| r.state == state)
}

/// The cached path of a test asset, fetching it (mirror or registry) when missing.
pub fn test_asset(name: &str) -> anyhow::Result<PathBuf> {
    let dirs = Dirs::resolve()?;
    if let Ok(p) = faceswapd::assets::locate(&dirs, name) {
        return Ok(p);
    }
    let asset = faceswapd::assets::Asset::by_name(name)?;
    faceswapd::assets::fetch(&dirs, &[asset], &faceswapd::assets::mirrors(""), |_, _| {})
        .with_context(|| {
            format!("fetching test asset {name} (run `faceswapd assets fetch --media`)")
        })?;
    Ok(faceswapd::assets::locate(&dirs, name)?)
}

/// The python of a private venv `<cache>/tools/<name>` with the pinned `requirement` installed,
/// created on first use for a bench's comparison run (best effort: a note is printed and the
/// path returned anyway when it cannot be set up, so the bench reports the skip).
pub fn bench_venv(name: &str, requirement: &str) -> anyhow::Result<PathBuf> {
    let dirs = Dirs::resolve()?;
    let venv = dirs.cache.join("tools").join(name);
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        println!(
            "setting up {} (pip install {requirement}) for the comparison…",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", requirement])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            println!("could not set up {requirement}; the comparison will be skipped");
        }
    }
    Ok(python)
}

/// Runs the `ffmpeg` command (quiet, overwriting) with `args`, writing `out`; panics with
/// FFmpeg's message on failure (test helper).
pub fn ffmpeg<S: AsRef<std::ffi::OsStr>>(args: &[S], out: &Path) {
    let o = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .output()
        .expect("the ffmpeg command (Debian package ffmpeg; installers/deps.sh installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Copies the named fixture stills into `dir` (created).
pub fn copy_fixtures(dir: &Path, names: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in names {
        std::fs::copy(test_asset(name)?, dir.join(name))?;
    }
    Ok(())
}

/// Extracts `input` into faceset `output` with the user's converted models (DFL full-face crops
/// of `size` px, every frame).
pub fn extract_faceset(input: &Path, output: &Path, size: u32) -> anyhow::Result<()> {
    let dirs = Dirs::resolve()?;
    let models = faceswapd::extract::default_models(&dirs)
        .context("converted models are cached (run installers/test.sh)")?;
    let req = faceswapd::extract::ExtractRequest {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        size,
        centering: faceswapd::geometry::Centering::DflFull,
        every_nth: 1,
        settings: faceswapd::faceset::face::ExtractSettings::default(),
        smoothing: Some(Default::default()),
    };
    faceswapd::extract::run_extraction(&req, &models, |_, _| true)?;
    Ok(())
}

/// Copies the named fixture stills into `<root>/photos` and extracts them into the faceset
/// `<root>/faces` (`size` px); returns the faceset folder.
pub fn faceset_from_photos(root: &Path, names: &[&str], size: u32) -> anyhow::Result<PathBuf> {
    let photos = root.join("photos");
    copy_fixtures(&photos, names)?;
    let faceset = root.join("faces");
    extract_faceset(&photos, &faceset, size)?;
    Ok(faceset)
}

/// How many files the atomic writer is still writing in `dir` (its temporary names).
pub fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(faceswapd::atomic::TEMP_PREFIX)
            })
            .count()
    })
}

/// Waits until the atomic writer starts a file in `dir` (a temporary name appears), at most
/// `timeout`; true when one did. Woken by inotify the moment the file is created, so a kill
/// right after lands during the write more often than not.
pub fn wait_for_temp_file(dir: &Path, timeout: Duration) -> anyhow::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: plain syscalls on a descriptor this function owns and closes.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        bail!("inotify_init1: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is open; closing it here ends its only use.
    let _close = scopeguard(move || unsafe {
        libc::close(fd);
    });
    // SAFETY: `c_dir` is a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd, c_dir.as_ptr(), libc::IN_CREATE) } < 0 {
        bail!(
            "watching {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    // Checked after the watch is set, so a file made in between is not missed.
    if temp_files(dir) > 0 {
        return Ok(true);
    }
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while let Some(left) = timeout.checked_sub(start.elapsed()) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready =
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: reading into a buffer this function owns.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            continue;
        }
        let mut at = 0;
        let header = std::mem::size_of::<libc::inotify_event>();
        while at + header <= n as usize {
            // SAFETY: the kernel wrote a whole event header at `at`.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
            let name = &buf[at + header..at + header + ev.len as usize];
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            if name.starts_with(faceswapd::atomic::TEMP_PREFIX.as_bytes()) {
                return Ok(true);
            }
            at += header + ev.len as usize;
        }
    }
    Ok(false)
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// SIGKILLs a daemon that is training into `model_dir`, checks that a valid checkpoint is there
/// (never behind `last_step`, which is updated, and loaded without warnings), and restarts the
/// daemon. Returns whether the kill landed during a checkpoint write, and a new connection.
pub fn kill_during_training(
    d: &mut DaemonUnderTest,
    model_dir: &Path,
    last_step: &mut u64,
) -> anyhow::Result<(bool, Connection)> {
    d.kill9()?;
    let mid_write = temp_files(model_dir) > 0;
    let (ck, warnings) = faceswapd::checkpoint::load_latest(model_dir)?;
    let step = ck.map_or(0, |c| c.step);
    if step < *last_step {
        bail!("checkpoint went back: {step} < {last_step}");
    }
    if !warnings.is_empty() {
        bail!("checkpoint warnings: {warnings:?}");
    }
    *last_step = step;
    d.restart()?;
    Ok((mid_write, d.connect()?))
}

/// Gives a daemon under test (whose cache is its own) the user's converted extractor models
/// and ONNX Runtime, so it can find faces.
pub fn share_extractor_models(daemon_root: &Path) -> anyhow::Result<()> {
    let real = Dirs::resolve()?.cache;
    let cache = daemon_root.join("cache").join("faceswappp");
    std::fs::create_dir_all(&cache)?;
    for sub in ["models", "runtime"] {
        if !cache.join(sub).exists() {
            std::os::unix::fs::symlink(real.join(sub), cache.join(sub))?;
        }
    }
    Ok(())
}

/// Runs `installers/bundle.sh` (debug or release build of the plug-in) into `dir` and checks
/// the bundle's layout; `dir` is what OFX_PLUGIN_PATH names.
pub fn bundle_plugin(dir: &Path, release: bool) -> anyhow::Result<()> {
    bundle(dir, release, false)
}

/// [`bundle_plugin`], debug, with the plug-in's `test-hooks` feature (the test host's
/// forced-panic action); no user bundle has it.
pub fn bundle_test_plugin(dir: &Path) -> anyhow::Result<()> {
    bundle(dir, false, true)
}

fn bundle(dir: &Path, release: bool, test_hooks: bool) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../installers/bundle.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if !release {
        cmd.arg("--debug");
    }
    if test_hooks {
        cmd.arg("--test-hooks");
    }
    let out = cmd.arg("--out").arg(dir).output()?;
    if !out.status.success() {
        bail!("bundle.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let bundle = dir.join("Faceswap.ofx.bundle");
    for file in [
        "Contents/Info.plist",
        "Contents/Linux-x86-64/Faceswap.ofx",
        "Contents/Resources/org.faceswappp.Faceswap.png",
        "Contents/Resources/org.faceswappp.FaceswapTrainer.png",
    ] {
        if !bundle.join(file).is_file() {
            bail!("the bundle lacks {file}");
        }
    }
    Ok(())
}

/// The python of the pinned converter venv (it has the `onnx` package), which tests use to
/// build tiny ONNX models with the signature of a real net.
pub fn converter_python() -> anyhow::Result<PathBuf> {
    let p = Dirs::resolve()?
        .cache
        .join("tools")
        .join("tflite2onnx")
        .join("bin")
        .join("python");
    if !p.is_file() {
        bail!(
            "{} missing: run `faceswapd assets fetch --models`",
            p.display()
        );
    }
    Ok(p)
}

/// Runs a Python script with the converter venv's python (which has NumPy and onnx); an
/// error carries the script's stderr.
pub fn run_converter_python(script: &str, args: &[&Path]) -> anyhow::Result<()> {
    let out = Command::new(converter_python()?)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("python failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A small SAEHD model (DF, `resolution` px, bottleneck `ae_dims`, encoder `e_dims`) trained
/// two steps on two fixture stills (both sides) under `root`: tests and benches that exercise
/// the path around a model, not its quality. Returns the model folder.
pub fn tiny_photo_model(
    root: &Path,
    resolution: u32,
    ae_dims: u32,
    e_dims: u32,
) -> anyhow::Result<PathBuf> {
    let photos = root.join("photos");
    copy_fixtures(
        &photos,
        &["grace_hopper.jpg", "eileen_collins_astronaut.png"],
    )?;
    extract_faceset(&photos, &root.join("faces"), 64)?;
    let model = root.join("model");
    let req = faceswapd::train::TrainRequest {
        faceset_a: root.join("faces"),
        faceset_b: root.join("faces"),
        model_dir: model.clone(),
        settings: faceswap_protocol::TrainSettings {
            resolution,
            ae_dims,
            e_dims,
            d_dims: 8,
            d_mask_dims: 4,
            batch: 2,
            steps: 2,
            save_every: 2,
            preview_every: 100,
            ..faceswap_protocol::TrainSettings::default()
        },
        device: faceswap_models::ComputeDevice::CPU,
        replicas: Vec::new(),
    };
    faceswapd::train::run_training(&req, |_| true).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(model)
}

/// A bench setting from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One side's training batch of random faces (`batch` × 3 × `res` × `res`) with full masks,
/// for training benches.
pub fn random_side(
    batch: usize,
    res: usize,
    device: &faceswap_models::burn::tensor::Device,
) -> faceswap_models::SideBatch {
    use faceswap_models::burn::tensor::{Distribution, Tensor};
    faceswap_models::SideBatch::unmasked(Tensor::<4>::random(
        [batch, 3, res, res],
        Distribution::Default,
        device,
    ))
}

/// Mean milliseconds per training step of a fresh Adam trainer for `opts` on random batches
/// of `batch` faces per side: one untimed step, then `steps` timed ones. Returns the trainer
/// too, for its parameter count.
pub fn time_train_steps(
    opts: impl Into<faceswap_models::ModelOptions>,
    precision: faceswap_models::train::Precision,
    batch: usize,
    steps: usize,
) -> (f64, faceswap_models::FaceTrainer) {
    use faceswap_models::train::{OptimizerKind, TrainerConfig};
    let opts: faceswap_models::ModelOptions = opts.into();
    let device = faceswap_models::burn::tensor::Device::flex().autodiff();
    let res = opts.resolution();
    let mut trainer = faceswap_models::FaceTrainer::new(
        &opts,
        &device,
        TrainerConfig {
            optimizer: OptimizerKind::Adam,
            precision,
            ..TrainerConfig::default()
        },
    );
    let (a, b) = (
        random_side(batch, res, &device),
        random_side(batch, res, &device),
    );
    trainer.train_step(&a, &b);
    let start = Instant::now();
    for _ in 0..steps {
        trainer.train_step(&a, &b);
    }
    (
        start.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64,
        trainer,
    )
}
