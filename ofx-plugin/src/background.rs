//! The plug-in's own threads (the trainer's status poller, the daemon health check). None of
//! them calls the host: what they learn goes into shared state that an action shows. When an
//! instance goes, its threads are told to stop but not joined (a thread waiting on a stopped
//! daemon would hold the host's destroy for a whole deadline); each ends by itself. At Unload
//! the finished ones are joined, and if one still runs the library pins itself in memory, so
//! the host unloading it cannot pull code from under that thread.

use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Starts a named plug-in thread. Returns false if the system refused a thread.
pub(crate) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> bool {
    let Ok(handle) = std::thread::Builder::new().name(name.into()).spawn(body) else {
        return false;
    };
    let mut threads = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    threads.retain(|t| !t.is_finished());
    threads.push(handle);
    true
}

/// At Unload: joins the threads that ended; pins the library if any still runs.
pub(crate) fn settle_at_unload() {
    let mut threads = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
    for t in done {
        let _ = t.join();
    }
    if !running.is_empty() {
        threads.extend(outlive_unload(running));
    }
}

/// Threads that may run after Unload: the library stays mapped for them.
#[cfg(unix)]
fn outlive_unload(running: Vec<JoinHandle<()>>) -> Vec<JoinHandle<()>> {
    pin_library();
    running
}

/// Without a way to pin the library here, waits for them: each ends after its current call.
#[cfg(not(unix))]
fn outlive_unload(running: Vec<JoinHandle<()>>) -> Vec<JoinHandle<()>> {
    for t in running {
        let _ = t.join();
    }
    Vec::new()
}

#[cfg(unix)]
fn pin_library() {
    // SAFETY: dladdr reads the address of a function in this library and fills `info`;
    // dlopen with RTLD_NOLOAD only takes another reference to a library already loaded, and
    // RTLD_NODELETE keeps it mapped after the host's dlclose.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let here = pin_library as *const () as *const libc::c_void;
        if libc::dladdr(here, &mut info) != 0 && !info.dli_fname.is_null() {
            libc::dlopen(
                info.dli_fname,
                libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
            );
        }
    }
}

/// A stop request a thread can wait on between its calls.
#[derive(Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl StopSignal {
    /// Asks the thread to stop and wakes it if it waits.
    pub(crate) fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Whether a stop was asked.
    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `pause`; true when a stop was asked (then at once).
    pub(crate) fn wait(&self, pause: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, pause, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}
