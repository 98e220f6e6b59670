//! Whether the daemon answers. After a call misses its deadline the link stops waiting on the
//! daemon: renders pass the source through at once, and a thread of its own probes the daemon
//! (a status call with a short timeout) until it answers again. A hung daemon thus costs one
//! deadline, not one per frame. A probe that finds nothing listening ends the state too: the
//! link's own path then says the daemon is not running and starts one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faceswap_protocol::{ClientKind, Connection, Request, Response, SocketPath};

use crate::background::{self, StopSignal};

/// How long one probe waits for the daemon's answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// Pause between probes.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The daemon's responsiveness as one link sees it, shared with its probe thread.
#[derive(Default)]
pub(crate) struct Health {
    state: Mutex<State>,
    closed: StopSignal,
}

#[derive(Default)]
struct State {
    not_responding: bool,
    probing: bool,
}

impl Health {
    /// False from a missed deadline until a probe gets an answer.
    pub(crate) fn responding(&self) -> bool {
        !self.lock().not_responding
    }

    /// A call missed its deadline: stop waiting on the daemon and probe it off this thread.
    pub(crate) fn missed_deadline(self: &Arc<Self>, socket: &SocketPath) {
        let mut state = self.lock();
        state.not_responding = true;
        if state.probing || self.closed.is_stopped() {
            return;
        }
        let (health, socket) = (Arc::clone(self), socket.clone());
        state.probing =
            background::spawn("fspp-probe", move || health.probe_until_answered(&socket));
    }

    /// The link is going: its probe ends after its current call.
    pub(crate) fn close(&self) {
        self.closed.stop();
    }

    fn probe_until_answered(&self, socket: &SocketPath) {
        loop {
            if probe(socket) != Probe::Silent {
                let mut state = self.lock();
                state.not_responding = false;
                state.probing = false;
                return;
            }
            if self.closed.wait(PROBE_EVERY) {
                self.lock().probing = false;
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one probe found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// The daemon answered.
    Answered,
    /// Nothing listens (it died): the link's own path reports it and starts a daemon.
    Gone,
    /// Connected, no answer in time: still hung.
    Silent,
}

/// One status call to the daemon within [`PROBE_TIMEOUT`].
fn probe(socket: &SocketPath) -> Probe {
    let answer =
        Connection::connect(socket, ClientKind::OfxPlugin, PROBE_TIMEOUT).and_then(|mut c| {
            c.set_timeout(Some(PROBE_TIMEOUT))?;
            c.call(&Request::Status)
        });
    match answer {
        Ok(Response::Status(_)) => Probe::Answered,
        Err(e) if e.is_timeout() => Probe::Silent,
        // Refused or no socket file: not running. Any other answer: it is alive.
        _ => Probe::Gone,
    }
}
