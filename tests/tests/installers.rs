//! The installers: the Linux scripts into staging roots (layout, idempotence, uninstall to an
//! empty tree), a real user-mode install that doctor and the test OFX host accept, the unit
//! accepted by systemd-analyze, shellcheck on every script, and the macOS/Windows files parsed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use faceswap_tests::bundle_plugin;
use faceswap_tests::ofx_host::OfxTestHost;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn daemon_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faceswapd-under-test"))
}

/// A bundle built once per test binary.
fn bundle() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("fspp-installer-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        bundle_plugin(&dir, false).unwrap();
        dir.join("Faceswap.ofx.bundle")
    })
    .clone()
}

/// Runs an installer script with a clean environment for `home`.
fn script(name: &str, args: &[&str], home: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("installers/linux").join(name))
        .args(args)
        .env("HOME", home);
    for var in [
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "OFX_PLUGIN_PATH",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    println!(
        "$ {name} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file and folder under `root`: relative path → (mode, content hash).
fn tree(root: &Path) -> BTreeMap<String, (u32, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (mode, 0));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ *b as u64).wrapping_mul(0x100000001b3)
                });
                out.insert(rel, (mode, hash));
            }
        }
    }
    out
}

#[test]
fn staged_installs_are_laid_out_idempotent_and_uninstall_to_an_empty_tree() {
    let bundle = bundle();
    let daemon = daemon_bin();
    let home = Path::new("/home/tester");
    for (mode, expected) in [
        (
            "--user",
            vec![
                "home/tester/.local/share/faceswappp/OFX/Plugins/Faceswap.ofx.bundle/Contents/Info.plist",
                "home/tester/.local/share/faceswappp/OFX/Plugins/Faceswap.ofx.bundle/Contents/Linux-x86-64/Faceswap.ofx",
                "home/tester/.local/share/faceswappp/OFX/Plugins/Faceswap.ofx.bundle/Contents/Resources/org.faceswappp.Faceswap.png",
                "home/tester/.local/bin/faceswapd",
                "home/tester/.config/systemd/user/faceswapd.service",
                "home/tester/.config/environment.d/60-faceswappp.conf",
                "home/tester/.local/share/faceswappp/install-manifest.txt",
            ],
        ),
        (
            "--system",
            vec![
                "usr/OFX/Plugins/Faceswap.ofx.bundle/Contents/Info.plist",
                "usr/OFX/Plugins/Faceswap.ofx.bundle/Contents/Linux-x86-64/Faceswap.ofx",
                "usr/OFX/Plugins/Faceswap.ofx.bundle/Contents/Resources/org.faceswappp.FaceswapTrainer.png",
                "usr/local/bin/faceswapd",
                "usr/lib/systemd/user/faceswapd.service",
                "usr/local/share/faceswappp/install-manifest.txt",
            ],
        ),
    ] {
        let stage = tempfile::tempdir().unwrap();
        let dest = stage.path().display().to_string();
        let (bundle_arg, daemon_arg) = (bundle.display().to_string(), daemon.display().to_string());
        // The user layout names the staging root with --destdir, the system one with DESTDIR.
        let (args, env): (Vec<&str>, Vec<(&str, &Path)>) = if mode == "--user" {
            (
                vec![
                    mode,
                    "--destdir",
                    &dest,
                    "--bundle",
                    &bundle_arg,
                    "--daemon",
                    &daemon_arg,
                ],
                vec![],
            )
        } else {
            (
                vec![mode, "--bundle", &bundle_arg, "--daemon", &daemon_arg],
                vec![("DESTDIR", stage.path())],
            )
        };
        let out = script("install.sh", &args, home, &env);
        assert!(out.status.success());
        let first = tree(stage.path());
        for file in &expected {
            assert!(first.contains_key(*file), "{mode}: missing {file}");
        }
        for exe in expected
            .iter()
            .filter(|f| f.ends_with("faceswapd") || f.ends_with(".ofx"))
        {
            assert_eq!(first[*exe].0 & 0o111, 0o111, "{exe} is executable");
        }
        let unit_file = expected.iter().find(|f| f.ends_with(".service")).unwrap();
        let unit = std::fs::read_to_string(stage.path().join(unit_file)).unwrap();
        let daemon_at = if mode == "--user" {
            "/home/tester/.local/bin/faceswapd"
        } else {
            "/usr/local/bin/faceswapd"
        };
        assert!(
            unit.contains(&format!("ExecStart={daemon_at} serve")),
            "{unit}"
        );
        if mode == "--user" {
            let env = std::fs::read_to_string(
                stage
                    .path()
                    .join("home/tester/.config/environment.d/60-faceswappp.conf"),
            )
            .unwrap();
            assert!(env.contains(
                "OFX_PLUGIN_PATH=/home/tester/.local/share/faceswappp/OFX/Plugins${OFX_PLUGIN_PATH:+:${OFX_PLUGIN_PATH}}"
            ), "{env}");
        }
        // Nothing else: no temporaries left, only the bundle, daemon, unit, env and manifest.
        let files: Vec<&String> = first.keys().filter(|k| !k.ends_with('/')).collect();
        println!(
            "{mode}: {} files, {} folders",
            files.len(),
            first.len() - files.len()
        );
        assert!(files.iter().all(|f| !f.contains(".installing")));

        let again = script("install.sh", &args, home, &env);
        assert!(again.status.success());
        assert_eq!(
            tree(stage.path()),
            first,
            "{mode}: a second install changed the tree"
        );

        let out = script("uninstall.sh", &[mode, "--destdir", &dest], home, &[]);
        assert!(out.status.success());
        let left = tree(stage.path());
        assert!(left.is_empty(), "{mode}: left behind {left:?}");
        let out = script("uninstall.sh", &[mode, "--destdir", &dest], home, &[]);
        assert!(out.status.success(), "uninstalling twice is fine");
    }
}

/// A real user-mode install for a fresh user (its own HOME) on this machine: the doctor passes
/// and the test OFX host finds the plug-in through the installed OFX_PLUGIN_PATH entry; the
/// daemon's own `service` command installs, reports and removes the unit.
#[test]
fn user_install_passes_doctor_and_the_host_finds_the_plugin() {
    let home = tempfile::tempdir().unwrap();
    // Model assets come from this machine's cache (already fetched and verified by the suite).
    let cache = faceswapd::paths::Dirs::resolve().unwrap().cache;
    let cache_home = cache.parent().unwrap();
    let runtime = home.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let env = [
        ("XDG_CACHE_HOME", cache_home),
        ("XDG_RUNTIME_DIR", runtime.as_path()),
    ];
    let out = script(
        "install.sh",
        &[
            "--user",
            "--no-start",
            "--bundle",
            &bundle().display().to_string(),
            "--daemon",
            &daemon_bin().display().to_string(),
        ],
        home.path(),
        &env,
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fetching model assets"), "{text}");

    let installed = home.path().join(".local/bin/faceswapd");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&installed);
        cmd.args(args).env("HOME", home.path());
        for var in [
            "XDG_DATA_HOME",
            "XDG_CONFIG_HOME",
            "FACESWAPD_SOCKET",
            "FACESWAPD_CONFIG",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ faceswapd {}\n{text}", args.join(" "));
        (out.status.success(), text)
    };
    let (ok, report) = run(&["doctor"]);
    assert!(ok, "doctor failed after install:\n{report}");

    // What an editor started from the user's session sees.
    let conf =
        std::fs::read_to_string(home.path().join(".config/environment.d/60-faceswappp.conf"))
            .unwrap();
    let value = conf
        .lines()
        .find_map(|l| l.strip_prefix("OFX_PLUGIN_PATH="))
        .unwrap();
    let plugin_path = value.split("${").next().unwrap();
    assert!(plugin_path.starts_with(&home.path().display().to_string()));
    let host = OfxTestHost::load(plugin_path).unwrap();
    let ids: Vec<&str> = host.plugins.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        ["org.faceswappp.Faceswap", "org.faceswappp.FaceswapTrainer"]
    );
    // The installed plug-in has no test hooks: the forced-panic action is just unknown.
    let inst = host.create_instance("org.faceswappp.Faceswap").unwrap();
    assert_eq!(
        inst.action(faceswap_ofx::ofx::FORCED_FAILURE_ACTION),
        14,
        "kOfxStatReplyDefault"
    );
    drop(inst);

    // `faceswapd service …` with no systemd user session here: the unit is written and the
    // message says how it starts; status reports it; uninstall removes it.
    let (_, _) = run(&["service", "uninstall"]);
    let (ok, text) = run(&["service", "install"]);
    assert!(ok, "{text}");
    let unit = home.path().join(".config/systemd/user/faceswapd.service");
    let written = std::fs::read_to_string(&unit).unwrap();
    assert!(
        written.contains(&format!("ExecStart={} serve", installed.display())),
        "{written}"
    );
    let (ok, text) = run(&["service", "status"]);
    assert!(ok && text.contains("installed:"), "{text}");
    let (ok, text) = run(&["service", "uninstall"]);
    assert!(ok && text.contains("removed"), "{text}");
    assert!(!unit.exists());

    let out = script("uninstall.sh", &["--user"], home.path(), &env);
    assert!(out.status.success());
    assert!(!installed.exists());
    assert!(!home.path().join(".local/share/faceswappp/OFX").exists());
}

#[test]
fn systemd_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(daemon_bin())
        .args(["service", "definition", "--exec"])
        .arg(daemon_bin())
        .output()
        .unwrap();
    assert!(out.status.success());
    let unit = dir.path().join("faceswapd.service");
    std::fs::write(&unit, &out.stdout).unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; installers/deps.sh installs it)");
    let said = String::from_utf8_lossy(&verify.stderr);
    println!("systemd-analyze verify: {:?}\n{said}", verify.status);
    // Warnings about the host's own units are not ours; nothing may name our unit.
    assert!(verify.status.success(), "{said}");
    assert!(!said.contains("faceswapd.service"), "{said}");
}

#[test]
fn shellcheck_passes_on_every_installer_script() {
    let mut scripts = Vec::new();
    let mut stack = vec![repo().join("installers"), repo().join(".ci")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.starts_with(b"#!")) {
                scripts.push(p);
            }
        }
    }
    scripts.sort();
    assert!(scripts.len() >= 8, "{scripts:?}");
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(&scripts)
        .current_dir(repo())
        .output()
        .expect("shellcheck (Debian package shellcheck; installers/deps.sh installs it)");
    println!("shellcheck on {} scripts", scripts.len());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Python's plistlib (a real plist parser) reads each file; prints label and arguments.
const READ_PLIST: &str = r#"
import plistlib, sys
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        d = plistlib.load(f)
    print(d.get('Label') or d.get('CFBundleIdentifier'), d.get('ProgramArguments') or d.get('CFBundleExecutable'))
"#;

#[test]
fn macos_and_windows_files_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("Info.plist");
    let out = Command::new("bash")
        .arg(repo().join("installers/info-plist.sh"))
        .output()
        .unwrap();
    std::fs::write(&info, &out.stdout).unwrap();
    let generated = dir.path().join("generated.plist");
    std::fs::write(
        &generated,
        faceswapd::service::launchd_plist(
            Path::new("/Users/a b/faceswapd"),
            Path::new("/tmp/x.log"),
        ),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(READ_PLIST)
        .arg(repo().join("installers/macos/org.faceswappp.faceswapd.plist"))
        .arg(&info)
        .arg(&generated)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "org.faceswappp.faceswapd ['/usr/local/bin/faceswapd', 'serve']",
            "org.faceswappp.Faceswap Faceswap.ofx",
            "org.faceswappp.faceswapd ['/Users/a b/faceswapd', 'serve']",
        ]
    );

    // Inno Setup: sections, `Key: "value"; Key: value` entries, `key=value` in [Setup].
    let iss = std::fs::read_to_string(repo().join("installers/windows/faceswappp.iss")).unwrap();
    let entries = parse_iss(&iss).unwrap();
    for key in ["AppId", "AppName", "AppVersion", "DefaultDirName"] {
        assert!(
            entries["Setup"].iter().any(|e| e.contains_key(key)),
            "[Setup] {key}"
        );
    }
    let files = &entries["Files"];
    assert!(
        files
            .iter()
            .all(|e| e.contains_key("Source") && e.contains_key("DestDir"))
    );
    assert!(files.iter().any(|e| {
        e["DestDir"].contains(r"OFX\Plugins\Faceswap.ofx.bundle\Contents\Win64")
            && e.get("DestName").map(String::as_str) == Some("Faceswap.ofx")
    }));
    for e in files {
        // Files from this repository exist.
        if let Some(rel) = e["Source"].strip_prefix(r"{#RepoRoot}\installers\") {
            assert!(
                repo()
                    .join("installers")
                    .join(rel.replace('\\', "/"))
                    .is_file(),
                "{rel}"
            );
        }
    }
    assert!(
        entries["Run"]
            .iter()
            .any(|e| e["Parameters"].contains("/SC ONLOGON"))
    );
    assert!(
        entries["UninstallRun"]
            .iter()
            .any(|e| e["Parameters"].contains("/Delete"))
    );
    let e = parse_iss("[Files]\nSource: \"a; DestDir: b\n").unwrap_err();
    assert!(e.contains("line 2"), "{e}");
}

type IssEntries = BTreeMap<String, Vec<BTreeMap<String, String>>>;

/// Parses an Inno Setup script's sections (preprocessor lines and comments skipped).
fn parse_iss(text: &str) -> Result<IssEntries, String> {
    let mut out = IssEntries::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |why: &str| format!("line {}: {why}: {raw}", n + 1);
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let Some(sec) = &section else {
            return Err(at("outside any section"));
        };
        let mut entry = BTreeMap::new();
        if sec == "Setup" {
            let (k, v) = line.split_once('=').ok_or_else(|| at("no '='"))?;
            entry.insert(k.trim().to_string(), v.trim().to_string());
        } else {
            // `Key: value` pairs split on ';' outside double quotes ("" is an escaped quote).
            let mut parts = Vec::new();
            let (mut cur, mut quoted) = (String::new(), false);
            for c in line.chars() {
                match c {
                    '"' => {
                        quoted = !quoted;
                        cur.push(c);
                    }
                    ';' if !quoted => parts.push(std::mem::take(&mut cur)),
                    _ => cur.push(c),
                }
            }
            if quoted {
                return Err(at("unbalanced quotes"));
            }
            parts.push(cur);
            for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
                let (k, v) = p
                    .split_once(':')
                    .ok_or_else(|| at("a parameter without ':'"))?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                entry.insert(k.trim().to_string(), v.replace("\"\"", "\""));
            }
        }
        out.entry(sec.clone()).or_default().push(entry);
    }
    Ok(out)
}
