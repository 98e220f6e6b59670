//! A real `faceswapd` process over a real socket: concurrency, hostile clients, permissions,
//! single instance, crash recovery, clean shutdown, CLI autostart.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use faceswap_protocol::framing::encode_payload;
use faceswap_protocol::handshake::client_handshake_as;
use faceswap_protocol::transport::connect_raw;
use faceswap_protocol::{
    ClientKind, ErrorCode, FrameOp, FrameSlot, Hello, JobSpec, JobState, MAX_CONTROL_MESSAGE,
    PROTOCOL_VERSION, PixelFormat, ProtocolError, Request, Response, read_frame,
};
use faceswap_tests::{DaemonUnderTest, test_asset, wait_job, wait_state};

const BIN: &str = env!("CARGO_BIN_EXE_faceswapd-under-test");

fn start(root: &Path) -> DaemonUnderTest {
    DaemonUnderTest::start(Path::new(BIN), root).expect("daemon starts")
}

/// Queues an `ExtractFrames` job (every frame) and returns its id.
fn submit_frames_job(
    c: &mut faceswap_protocol::Connection,
    input: String,
    output_dir: String,
) -> faceswap_protocol::JobId {
    match c
        .call(&Request::SubmitJob {
            spec: JobSpec::ExtractFrames(faceswap_protocol::ExtractFramesJob {
                input,
                output_dir,
                every_nth: 1,
            }),
        })
        .unwrap()
    {
        Response::JobSubmitted { id } => id,
        other => panic!("expected JobSubmitted, got {other:?}"),
    }
}

fn hello() -> Hello {
    Hello {
        client: ClientKind::Test,
        client_version: "test".into(),
    }
}

/// One well-behaved client: status, job listing, a refused job, and frames through shared memory.
fn good_client(d: &DaemonUnderTest, n: usize) {
    let mut c = d.connect().unwrap();
    let slot_dir = d.socket.slot_dir().unwrap();
    let mut slot = FrameSlot::create(&slot_dir, 64 * 48 * 4).unwrap();
    for i in 0..25 {
        assert!(matches!(
            c.call(&Request::Status).unwrap(),
            Response::Status(_)
        ));
        assert!(matches!(
            c.call(&Request::ListJobs).unwrap(),
            Response::Jobs(_)
        ));
        let bad = c
            .call(&Request::SubmitJob {
                spec: JobSpec::ExtractFrames(faceswap_protocol::ExtractFramesJob {
                    input: format!("/nonexistent/{n}-{i}.mp4"),
                    output_dir: "/tmp/x".into(),
                    every_nth: 1,
                }),
            })
            .unwrap_err();
        assert!(
            matches!(
                bad,
                ProtocolError::Remote {
                    code: ErrorCode::InvalidInput,
                    ..
                }
            ),
            "{bad}"
        );
        let src: Vec<u8> = (0..64 * 48 * 4)
            .map(|k| ((k + n + i) % 251) as u8)
            .collect();
        slot.write_rows(64, 48, PixelFormat::Rgba8, &src, 64 * 4)
            .unwrap();
        let Response::FrameDone { content_hash } = c
            .call(&Request::ProcessFrame {
                slot: slot.path().display().to_string(),
                op: FrameOp::Invert,
            })
            .unwrap()
        else {
            panic!("expected FrameDone");
        };
        let mut out = vec![0u8; src.len()];
        let h = slot.read_rows(&mut out, 64 * 4).unwrap();
        assert_eq!(h.content_hash, content_hash);
        for (k, (a, b)) in src.iter().zip(&out).enumerate() {
            let expect = if k % 4 == 3 { *a } else { 255 - *a };
            assert_eq!(*b, expect, "client {n} pixel byte {k}");
        }
    }
}

#[test]
fn eight_concurrent_clients_while_hostile_clients_misbehave() {
    let root = tempfile::tempdir().unwrap();
    let mut d = start(root.path());
    std::thread::scope(|s| {
        for n in 0..8 {
            let d = &d;
            s.spawn(move || good_client(d, n));
        }
        // Garbage instead of a handshake: the daemon drops the connection.
        s.spawn(|| {
            let mut raw = connect_raw(&d.socket, Duration::from_secs(5)).unwrap();
            raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 64];
            let n = raw.read(&mut buf).unwrap_or(0);
            assert!(
                n == 0 || buf[..4] != *b"FSPP" || n == 8,
                "no reply beyond a preamble"
            );
        });
        // Wrong protocol version: a clear error naming both versions.
        s.spawn(|| {
            let mut raw = connect_raw(&d.socket, Duration::from_secs(5)).unwrap();
            let err = client_handshake_as(&mut raw, &hello(), PROTOCOL_VERSION + 7).unwrap_err();
            assert!(
                matches!(err, ProtocolError::VersionMismatch { .. }),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("v{}", PROTOCOL_VERSION + 7)),
                "{err}"
            );
        });
        // Oversize length prefix: refused with TooLarge, then disconnected.
        s.spawn(|| {
            let mut raw = connect_raw(&d.socket, Duration::from_secs(5)).unwrap();
            client_handshake_as(&mut raw, &hello(), PROTOCOL_VERSION).unwrap();
            raw.write_all(&(MAX_CONTROL_MESSAGE + 1).to_le_bytes())
                .unwrap();
            let reply: Response = read_frame(&mut raw).unwrap();
            assert!(
                matches!(&reply, Response::Error(e) if e.code == ErrorCode::TooLarge),
                "{reply:?}"
            );
            assert!(matches!(
                read_frame::<_, Response>(&mut raw),
                Err(ProtocolError::Disconnected)
            ));
        });
        // Truncated message: the client announces 100 bytes, sends 10 and hangs up.
        s.spawn(|| {
            let mut raw = connect_raw(&d.socket, Duration::from_secs(5)).unwrap();
            client_handshake_as(&mut raw, &hello(), PROTOCOL_VERSION).unwrap();
            raw.write_all(&100u32.to_le_bytes()).unwrap();
            raw.write_all(&[0xAB; 10]).unwrap();
        });
        // Garbage inside a well-framed message: an error reply, and the connection goes on.
        s.spawn(|| {
            let mut raw = connect_raw(&d.socket, Duration::from_secs(5)).unwrap();
            client_handshake_as(&mut raw, &hello(), PROTOCOL_VERSION).unwrap();
            let junk = [0xFFu8; 37];
            raw.write_all(&(junk.len() as u32).to_le_bytes()).unwrap();
            raw.write_all(&junk).unwrap();
            let reply: Response = read_frame(&mut raw).unwrap();
            assert!(
                matches!(&reply, Response::Error(e) if e.code == ErrorCode::Malformed),
                "{reply:?}"
            );
            let body = encode_payload(&Request::Status).unwrap();
            raw.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
            raw.write_all(&body).unwrap();
            assert!(matches!(
                read_frame::<_, Response>(&mut raw).unwrap(),
                Response::Status(_)
            ));
        });
        // A slot outside the daemon's slot folder is refused.
        s.spawn(|| {
            let mut c = d.connect().unwrap();
            let elsewhere = tempfile::tempdir().unwrap();
            let slot = FrameSlot::create(elsewhere.path(), 64).unwrap();
            let err = c
                .call(&Request::ProcessFrame {
                    slot: slot.path().display().to_string(),
                    op: FrameOp::Verify,
                })
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtocolError::Remote {
                        code: ErrorCode::BadSlot,
                        ..
                    }
                ),
                "{err}"
            );
        });
    });
    assert!(d.is_running(), "the daemon survived every client");
    let mut c = d.connect().unwrap();
    let Response::Status(s) = c.call(&Request::Status).unwrap() else {
        panic!()
    };
    assert_eq!(s.pid, d.pid().unwrap());
}

#[cfg(unix)]
#[test]
fn socket_is_owner_only_and_a_second_serve_refuses_with_the_pid() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let d = start(root.path());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(d.socket.path()), 0o600, "socket mode");
    assert_eq!(
        mode(d.socket.path().parent().unwrap()),
        0o700,
        "runtime dir mode"
    );
    assert_eq!(mode(&d.socket.slot_dir().unwrap()), 0o700, "slot dir mode");

    let out = d.cli(&["serve"]).unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already running (pid {})", d.pid().unwrap())),
        "{err}"
    );
}

#[test]
fn kill_9_during_a_job_leaves_it_interrupted_and_resume_finishes_it() {
    let video = test_asset("WolfgangLanger_Pexels.mp4").unwrap();
    let root = tempfile::tempdir().unwrap();
    let out_dir = root.path().join("frames");
    let mut d = start(root.path());
    let mut c = d.connect().unwrap();
    let id = submit_frames_job(
        &mut c,
        video.display().to_string(),
        out_dir.display().to_string(),
    );
    let before = wait_job(&mut c, id, Duration::from_secs(60), |r| {
        r.progress.done >= 20
    })
    .unwrap();
    assert_eq!(
        before.state,
        JobState::Running,
        "killed mid-job: {before:?}"
    );
    d.kill9().unwrap();
    let written_at_kill = std::fs::read_dir(&out_dir).unwrap().count();
    assert!(written_at_kill < 472, "the job was really cut short");

    d.restart().unwrap(); // also proves the stale socket is cleaned up
    let mut c = d.connect().unwrap();
    let r = faceswap_tests::job(&mut c, id).unwrap();
    assert_eq!(r.state, JobState::Interrupted, "{r:?}");
    assert!(
        r.log_tail.iter().any(|l| l.contains("jobs resume")),
        "{:?}",
        r.log_tail
    );
    let listed = d.cli(&["jobs", "list"]).unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("interrupted"));

    c.call(&Request::ResumeJob { id }).unwrap();
    let done = wait_state(&mut c, id, JobState::Done, Duration::from_secs(120)).unwrap();
    assert_eq!(done.resumes, 1);
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 472, "every frame once, no temp files left");
    for i in [0u64, 100, 471] {
        let bytes = std::fs::read(out_dir.join(format!("frame_{i:06}.png"))).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
    assert!(
        done.log_tail
            .iter()
            .any(|l| l.contains("were already there") && !l.contains("(0 were")),
        "resume skipped the frames written before the kill: {:?}",
        done.log_tail
    );
}

#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly_and_the_running_job_becomes_interrupted() {
    let video = test_asset("WolfgangLanger_Pexels.mp4").unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut d = start(root.path());
    let mut c = d.connect().unwrap();
    let id = submit_frames_job(
        &mut c,
        video.display().to_string(),
        root.path().join("f").display().to_string(),
    );
    wait_job(&mut c, id, Duration::from_secs(60), |r| {
        r.progress.done >= 5
    })
    .unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(d.pid().unwrap() as i32, libc::SIGTERM) },
        0
    );
    let status = d.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !d.socket.path().exists(),
        "socket removed on clean shutdown"
    );
    let record =
        std::fs::read_to_string(d.dirs().jobs().join(format!("job-{id:08}.toml"))).unwrap();
    assert!(record.contains("Interrupted"), "{record}");
}

#[test]
fn cli_starts_the_daemon_on_demand_and_reports_status() {
    let root = tempfile::tempdir().unwrap();
    let mut d = start(root.path());
    let out = d.cli(&["shutdown"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `shutdown` returns once the daemon has let go of its lock and socket.
    assert!(
        !d.socket.path().exists(),
        "socket left after shutdown returned"
    );
    d.wait_exit(Duration::from_secs(30)).unwrap();
    // Nothing listens now; `status` must start a daemon in the background and talk to it.
    let out = d.cli(&["status"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("running (pid"), "{text}");
    let out = d.cli(&["--no-autostart", "jobs", "list"]).unwrap();
    assert!(out.status.success());
    let out = d.cli(&["shutdown"]).unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
    let out = d.cli(&["--no-autostart", "status"]).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn a_corrupt_video_fails_its_job_with_a_clear_error_and_the_daemon_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let bogus = root.path().join("broken.mp4");
    std::fs::write(
        &bogus,
        b"\x00\x00\x00\x18ftypmp42 this is not really a video",
    )
    .unwrap();
    let d = start(root.path());
    let mut c = d.connect().unwrap();
    let id = submit_frames_job(
        &mut c,
        bogus.display().to_string(),
        root.path().join("out").display().to_string(),
    );
    let r = wait_state(&mut c, id, JobState::Failed, Duration::from_secs(30)).unwrap();
    let err = r.error.unwrap();
    assert!(
        err.contains("broken.mp4") && err.contains("cannot read video"),
        "{err}"
    );
    assert!(matches!(
        c.call(&Request::Status).unwrap(),
        Response::Status(_)
    ));
}

#[test]
fn simultaneous_cli_calls_share_one_autostarted_daemon() {
    let root = tempfile::tempdir().unwrap();
    let d = start(root.path());
    assert!(d.cli(&["shutdown"]).unwrap().status.success());
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| d.cli(&["status"]).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut pids = Vec::new();
    for out in &outputs {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = text
            .split("(pid ")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .unwrap()
            .to_string();
        pids.push(pid);
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "one daemon serves every client: {pids:?}");
    assert!(d.cli(&["shutdown"]).unwrap().status.success());
}

#[test]
fn cli_cancel_stops_a_running_job_and_resume_finishes_it() {
    let video = test_asset("WolfgangLanger_Pexels.mp4").unwrap();
    let root = tempfile::tempdir().unwrap();
    let d = start(root.path());
    let mut c = d.connect().unwrap();
    let out_dir = root.path().join("f");
    let id = submit_frames_job(
        &mut c,
        video.display().to_string(),
        out_dir.display().to_string(),
    );
    wait_job(&mut c, id, Duration::from_secs(60), |r| {
        r.progress.done >= 5
    })
    .unwrap();
    let out = d.cli(&["jobs", "cancel", &id.to_string()]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cancelled = wait_state(&mut c, id, JobState::Cancelled, Duration::from_secs(30)).unwrap();
    assert!(
        cancelled.progress.done < 472,
        "cancelled mid-way: {:?}",
        cancelled.progress
    );
    let shown = d.cli(&["jobs", "show", &id.to_string()]).unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("cancelled"));
    // Cancelling again is refused with a clear reason.
    let again = d.cli(&["jobs", "cancel", &id.to_string()]).unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("only queued or running jobs"));
    let resumed = d.cli(&["jobs", "resume", &id.to_string()]).unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("done"));
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 472);
}

#[test]
fn a_job_runs_on_the_device_it_names_records_it_and_an_unusable_one_fails_it() {
    let root = tempfile::tempdir().unwrap();
    for side in ["no_a", "no_b"] {
        std::fs::create_dir(root.path().join(side)).unwrap();
    }
    let d = start(root.path());
    let mut c = d.connect().unwrap();
    let train = |device: &str| {
        JobSpec::Train(faceswap_protocol::TrainJob {
            faceset_a: root.path().join("no_a").display().to_string(),
            faceset_b: root.path().join("no_b").display().to_string(),
            model_dir: root.path().join("model").display().to_string(),
            settings: Box::new(faceswap_protocol::TrainSettings {
                device: Some(device.into()),
                ..Default::default()
            }),
        })
    };
    let submit = |c: &mut faceswap_protocol::Connection, spec| match c
        .call(&Request::SubmitJob { spec })
        .unwrap()
    {
        Response::JobSubmitted { id } => id,
        other => panic!("expected JobSubmitted, got {other:?}"),
    };
    // The CPU is chosen and recorded before the job finds its facesets empty.
    let id = submit(&mut c, train("cpu"));
    let r = wait_state(&mut c, id, JobState::Failed, Duration::from_secs(60)).unwrap();
    assert_eq!(r.device.as_deref(), Some("cpu"), "{r:?}");
    let err = r.error.unwrap();
    assert!(
        !err.contains("device"),
        "the facesets failed it, not the device: {err}"
    );
    let out = d
        .cli(&["--no-autostart", "jobs", "show", &id.to_string()])
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("device: cpu"));
    // A device this build lacks fails the job, naming it and the feature; nothing runs
    // elsewhere in its place, and the daemon goes on.
    if faceswap_models::ComputeBackend::Cuda.device().is_none() {
        let id = submit(&mut c, train("cuda:1"));
        let r = wait_state(&mut c, id, JobState::Failed, Duration::from_secs(60)).unwrap();
        let err = r.error.unwrap();
        assert!(
            err.contains("cuda:1") && err.contains("--features cuda"),
            "{err}"
        );
        assert_eq!(r.device, None);
    }
    assert!(matches!(
        c.call(&Request::Status).unwrap(),
        Response::Status(_)
    ));
    // A misspelt device is refused at submission and when the command line is read.
    match c.call(&Request::SubmitJob { spec: train("tpu") }) {
        Err(ProtocolError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::InvalidInput);
            assert!(
                message.contains("\"tpu\"") && message.contains("cuda[:N]"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let out = d
        .cli(&[
            "--no-autostart",
            "train",
            "--a",
            "x",
            "--b",
            "y",
            "--model",
            "m",
            "--device",
            "tpu",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cuda[:N]"));
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    let root = tempfile::tempdir().unwrap();
    let d = start(root.path());
    for args in [&["status"][..], &["config", "default"], &["jobs", "list"]] {
        // The read end is closed before the command starts, so its first write meets EPIPE
        // (what `faceswapd status | head -0` does).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = d
            .command()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        println!("{args:?}: {} {err:?}", out.status);
        assert!(out.status.success(), "{args:?}: {}: {err}", out.status);
        assert!(
            !err.contains("panicked") && err.is_empty(),
            "{args:?}: {err}"
        );
    }
}
