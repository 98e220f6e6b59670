//! The daemon as a per-user background service, so it runs before the editor asks: a systemd
//! user unit on Linux, a launchd agent on macOS, a scheduled task at logon on Windows.
//! `faceswapd service install|uninstall|status|definition` wraps the platform's mechanism; the
//! Linux installer writes the same unit text (`service definition`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd user unit's file name.
pub const UNIT_NAME: &str = "faceswapd.service";
/// The launchd agent's label (and plist file stem).
pub const LAUNCHD_LABEL: &str = "org.faceswappp.faceswapd";
/// The Windows scheduled task's name.
pub const TASK_NAME: &str = "Faceswap++ daemon";

/// Why the service could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The service definition could not be written or removed.
    #[error("cannot write or remove {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// No home directory to put a per-user service in.
    #[error("cannot find the home directory for the per-user service (set HOME)")]
    NoHome,
    /// The platform's service manager refused.
    #[error("`{0}` failed: {1}")]
    Manager(String, String),
}

/// A systemd user unit that runs `exec serve`. Exit status 3 means another daemon already
/// holds the lock (started by the editor or the CLI first): not a failure, not restarted.
pub fn systemd_unit(exec: &Path) -> String {
    format!(
        "[Unit]\n\
         Description=Faceswap++ daemon (faceswapd): extraction, training and merging for the OFX plug-in\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={} serve\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         SuccessExitStatus=3\n\
         RestartPreventExitStatus=3\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        systemd_quote(exec)
    )
}

/// A path as one systemd command-line word.
fn systemd_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// A launchd agent property list that runs `exec serve` at login and keeps it alive.
pub fn launchd_plist(exec: &Path, log: &Path) -> String {
    let esc = |p: &Path| {
        p.display()
            .to_string()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>{LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
    <string>{}</string>
    <string>serve</string>
  </array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key><false/>
  </dict>
  <key>ProcessType</key><string>Background</string>
  <key>StandardErrorPath</key><string>{}</string>
</dict>
</plist>
"#,
        esc(exec),
        esc(log)
    )
}

/// Where this platform keeps the per-user service definition.
pub fn definition_path() -> Result<PathBuf, ServiceError> {
    let base = directories::BaseDirs::new().ok_or(ServiceError::NoHome)?;
    Ok(if cfg!(target_os = "macos") {
        base.home_dir()
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist"))
    } else if cfg!(windows) {
        // The task lives in the Task Scheduler; nothing is written.
        PathBuf::from(format!("Task Scheduler: {TASK_NAME}"))
    } else {
        base.config_dir().join("systemd/user").join(UNIT_NAME)
    })
}

/// This platform's service definition for `exec`.
pub fn definition(exec: &Path) -> Result<String, ServiceError> {
    Ok(if cfg!(target_os = "macos") {
        let log = crate::paths::Dirs::resolve()
            .map_err(|_| ServiceError::NoHome)?
            .logs()
            .join("launchd.log");
        launchd_plist(exec, &log)
    } else if cfg!(windows) {
        format!(
            "schtasks /Create /TN \"{TASK_NAME}\" /TR \"\\\"{}\\\" serve\" /SC ONLOGON /RL LIMITED /F",
            exec.display()
        )
    } else {
        systemd_unit(exec)
    })
}

fn run(program: &str, args: &[&str]) -> Result<String, ServiceError> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ServiceError::Manager(shown.clone(), e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(ServiceError::Manager(shown, err))
    }
}

/// Installs and starts the service for `exec`. Returns what was done, one line each; a
/// service manager that cannot be reached (no user session bus, say) is reported in a line
/// saying how to start the service later, since the definition is in place.
pub fn install(exec: &Path) -> Result<Vec<String>, ServiceError> {
    let mut done = Vec::new();
    if cfg!(windows) {
        let tr = format!("\"{}\" serve", exec.display());
        run(
            "schtasks",
            &[
                "/Create", "/TN", TASK_NAME, "/TR", &tr, "/SC", "ONLOGON", "/RL", "LIMITED", "/F",
            ],
        )?;
        done.push(format!("scheduled task \"{TASK_NAME}\" runs {tr} at logon"));
        match run("schtasks", &["/Run", "/TN", TASK_NAME]) {
            Ok(_) => done.push("started it".into()),
            Err(e) => done.push(format!(
                "not started now ({e}); it starts at the next logon"
            )),
        }
        return Ok(done);
    }
    let path = definition_path()?;
    let text = definition(exec)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ServiceError::Io(dir.to_path_buf(), e))?;
    }
    crate::atomic::write_atomic(&path, text.as_bytes())
        .map_err(|e| ServiceError::Io(path.clone(), e))?;
    done.push(format!("wrote {}", path.display()));
    let started = if cfg!(target_os = "macos") {
        // SAFETY: getuid has no preconditions and cannot fail.
        let domain = format!("gui/{}", unsafe { libc::getuid() });
        let _ = run(
            "launchctl",
            &["bootout", &format!("{domain}/{LAUNCHD_LABEL}")],
        );
        run(
            "launchctl",
            &["bootstrap", &domain, &path.display().to_string()],
        )
        .map(|_| format!("loaded {LAUNCHD_LABEL} into {domain}"))
    } else {
        run("systemctl", &["--user", "daemon-reload"]).and_then(|_| {
            run("systemctl", &["--user", "enable", "--now", UNIT_NAME])
                .map(|_| format!("enabled and started {UNIT_NAME} (systemctl --user)"))
        })
    };
    match started {
        Ok(line) => done.push(line),
        Err(e) => done.push(format!(
            "the service manager was not reached ({e}); the service starts at your next login, or now with {}",
            if cfg!(target_os = "macos") {
                format!("`launchctl bootstrap gui/$(id -u) {}`", path.display())
            } else {
                format!("`systemctl --user enable --now {UNIT_NAME}`")
            }
        )),
    }
    Ok(done)
}

/// Stops and removes the service. Returns what was done.
pub fn uninstall() -> Result<Vec<String>, ServiceError> {
    let mut done = Vec::new();
    if cfg!(windows) {
        run("schtasks", &["/Delete", "/TN", TASK_NAME, "/F"])?;
        done.push(format!("removed scheduled task \"{TASK_NAME}\""));
        return Ok(done);
    }
    let path = definition_path()?;
    let stopped = if cfg!(target_os = "macos") {
        // SAFETY: getuid has no preconditions and cannot fail.
        let target = format!("gui/{}/{LAUNCHD_LABEL}", unsafe { libc::getuid() });
        run("launchctl", &["bootout", &target]).map(|_| format!("unloaded {target}"))
    } else {
        run("systemctl", &["--user", "disable", "--now", UNIT_NAME])
            .map(|_| format!("stopped and disabled {UNIT_NAME}"))
    };
    match stopped {
        Ok(line) => done.push(line),
        Err(e) => done.push(format!("service manager: {e}")),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => done.push(format!("removed {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            done.push(format!("{} was not installed", path.display()))
        }
        Err(e) => return Err(ServiceError::Io(path, e)),
    }
    if !cfg!(target_os = "macos") {
        let _ = run("systemctl", &["--user", "daemon-reload"]);
    }
    Ok(done)
}

/// What the service manager says about the service, one line each.
pub fn status() -> Result<Vec<String>, ServiceError> {
    if cfg!(windows) {
        return Ok(vec![
            run("schtasks", &["/Query", "/TN", TASK_NAME])
                .unwrap_or_else(|e| format!("not installed ({e})")),
        ]);
    }
    let path = definition_path()?;
    let mut lines = vec![if path.is_file() {
        format!("installed: {}", path.display())
    } else {
        format!(
            "not installed ({} is missing; run `faceswapd service install`)",
            path.display()
        )
    }];
    if cfg!(target_os = "macos") {
        // SAFETY: getuid has no preconditions and cannot fail.
        let target = format!("gui/{}/{LAUNCHD_LABEL}", unsafe { libc::getuid() });
        lines.push(match run("launchctl", &["print", &target]) {
            Ok(_) => format!("loaded: {target}"),
            Err(_) => format!("not loaded: {target}"),
        });
    } else {
        for (what, verb) in [("enabled", "is-enabled"), ("active", "is-active")] {
            let answer = match run("systemctl", &["--user", verb, UNIT_NAME]) {
                Ok(s) => s,
                Err(ServiceError::Manager(_, e)) if e.is_empty() => "no".into(),
                Err(e) => format!("unknown ({e})"),
            };
            lines.push(format!("{what}: {answer}"));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_serve_and_quotes_paths_with_spaces() {
        let unit = systemd_unit(Path::new("/home/a/.local/bin/faceswapd"));
        assert!(unit.contains("\nExecStart=/home/a/.local/bin/faceswapd serve\n"));
        assert!(unit.contains("WantedBy=default.target"));
        let spaced = systemd_unit(Path::new("/opt/Face Swap/faceswapd"));
        assert!(spaced.contains("ExecStart=\"/opt/Face Swap/faceswapd\" serve"));
        let plist = launchd_plist(Path::new("/usr/local/bin/faceswapd"), Path::new("/tmp/l&g"));
        assert!(plist.contains("<string>/usr/local/bin/faceswapd</string>"));
        assert!(plist.contains("/tmp/l&amp;g"));
    }
}
