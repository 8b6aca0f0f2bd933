//! What a distribution package installs (#19): shell completions, man
//! pages, the systemd units of contrib/systemd, and `--help` with an
//! example for every command.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every command and sub-command, as word lists (`["policy", "set"]`).
const COMMANDS: &[&[&str]] = &[
    &["init"],
    &["snapshot"],
    &["snapshots"],
    &["restore"],
    &["ls"],
    &["cat"],
    &["diff"],
    &["find"],
    &["forget"],
    &["prune"],
    &["protect"],
    &["unprotect"],
    &["tag"],
    &["policy", "set"],
    &["policy", "show"],
    &["policy", "clear"],
    &["verify"],
    &["repair", "catalog"],
    &["repair", "snapshots"],
    &["stats"],
    &["copy"],
    &["mount"],
    &["config", "show"],
    &["completions"],
    &["man"],
];

#[test]
fn every_command_help_has_an_example() {
    let t = TestEnv::new();
    for words in COMMANDS
        .iter()
        .chain(&[&["policy"][..], &["repair"], &["config"]])
    {
        let out = t
            .cairn_without_store(words.iter().chain(&["--help"]))
            .assert()
            .success();
        let help = stdout(out.get_output());
        let example = help
            .split_once("Example")
            .map(|(_, after)| after)
            .unwrap_or_else(|| panic!("no example in `cairn {} --help`:\n{help}", words.join(" ")));
        assert!(example.contains("cairn "), "{words:?}: {help}");
    }
}

#[test]
fn completions_name_every_command_and_bash_can_load_them() {
    let t = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = t
            .cairn_without_store(["completions", shell])
            .assert()
            .success();
        let script = stdout(out.get_output());
        for words in COMMANDS {
            assert!(script.contains(words[0]), "{shell}: no {}", words[0]);
        }
        // fish names long options without their dashes (`-l exclude`).
        assert!(script.contains("exclude"), "{shell}");
    }
    let script = t.path("cairn.bash");
    let out = t
        .cairn_without_store(["completions", "bash"])
        .assert()
        .success();
    fs::write(&script, &out.get_output().stdout).unwrap();
    // Sourcing it defines the completion function and registers it.
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p cairn && declare -F _cairn",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr_of(&check));
    assert!(stdout(&check).contains("_cairn"), "{}", stdout(&check));
    let err = stderr_of(
        &t.cairn_without_store(["completions", "tcsh"])
            .assert()
            .code(2)
            .get_output()
            .clone(),
    );
    assert!(err.contains("tcsh"), "{err}");
}

#[test]
fn man_writes_one_page_per_command_and_prints_one_to_stdout() {
    let t = TestEnv::new();
    let dir = t.path("man1");
    t.cairn_without_store(["man", "--dir"])
        .arg(&dir)
        .assert()
        .success();
    let mut pages: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert!(pages.contains(&"cairn.1".to_owned()), "{pages:?}");
    for words in COMMANDS {
        let name = format!("cairn-{}.1", words.join("-"));
        assert!(pages.contains(&name), "no {name} in {pages:?}");
        let page = fs::read_to_string(dir.join(&name)).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{name}");
    }
    let snapshot = fs::read_to_string(dir.join("cairn-snapshot.1")).unwrap();
    assert!(snapshot.contains("exclude"), "options are documented");
    assert!(snapshot.contains("Example"), "the example is in the page");
    let out = t
        .cairn_without_store(["man", "snapshot"])
        .assert()
        .success();
    assert_eq!(stdout(out.get_output()), snapshot);
    let out = t
        .cairn_without_store(["man", "policy", "set"])
        .assert()
        .success();
    assert!(stdout(out.get_output()).contains("keep"));
    // man(1) can format the page, where man is installed.
    if Path::new("/usr/bin/man").exists() {
        let check = Command::new("man")
            .arg("-l")
            .arg(dir.join("cairn-snapshot.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", stderr_of(&check));
    }
}

// ---------------------------------------------------------------------------
// contrib/systemd

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

/// A unit file as section -> [(key, value)], refusing anything that is not
/// a comment, a section header or `Key=value` (what systemd reads).
fn parse_ini(path: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let text = fs::read_to_string(path).unwrap();
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not Key=value: {line}", path.display(), n + 1));
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("{}:{}: a key before any section", path.display(), n + 1));
        sections
            .get_mut(&section)
            .unwrap()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

fn values<'a>(
    ini: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    ini.get(section)
        .map(|kv| {
            kv.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_systemd_units_have_what_a_nightly_snapshot_and_a_weekly_verify_need() {
    let dir = units_dir();
    let service = parse_ini(&dir.join("cairn@.service"));
    let exec = values(&service, "Service", "ExecStart");
    assert_eq!(exec.len(), 2, "{exec:?}");
    assert!(
        exec[0].contains("--profile %i") && exec[0].ends_with(" snapshot"),
        "{exec:?}"
    );
    assert!(
        exec[1].contains("--profile %i") && exec[1].ends_with("forget --prune"),
        "{exec:?}"
    );
    assert_eq!(values(&service, "Service", "Type"), ["oneshot"]);
    assert_eq!(
        values(&service, "Unit", "OnFailure"),
        ["cairn-failure@%n.service"]
    );

    let verify = parse_ini(&dir.join("cairn-verify@.service"));
    let exec = values(&verify, "Service", "ExecStart");
    assert!(
        exec[0].contains("--profile %i") && exec[0].contains(" verify"),
        "{exec:?}"
    );
    assert_eq!(
        values(&verify, "Unit", "OnFailure"),
        ["cairn-failure@%n.service"]
    );

    for (timer, when) in [
        ("cairn@.timer", "*-*-* 02:30:00"),
        ("cairn-verify@.timer", "Sun *-*-* 04:00:00"),
    ] {
        let ini = parse_ini(&dir.join(timer));
        assert_eq!(values(&ini, "Timer", "OnCalendar"), [when], "{timer}");
        assert_eq!(values(&ini, "Timer", "Persistent"), ["true"], "{timer}");
        assert_eq!(
            values(&ini, "Install", "WantedBy"),
            ["timers.target"],
            "{timer}"
        );
    }
    let failure = parse_ini(&dir.join("cairn-failure@.service"));
    assert!(values(&failure, "Service", "ExecStart")[0].contains("journalctl --unit=%i"));
}

/// `systemd-analyze verify` on each unit, as an instance for profile
/// `app`, with the path of the binary this test built in place of
/// /usr/local/bin/cairn (which it checks exists).
#[test]
fn systemd_analyze_verifies_the_units() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!(
            "systemd-analyze is not installed (Debian package systemd): only the INI check ran"
        );
        return;
    };
    assert!(version.status.success());
    let t = TestEnv::new();
    let dir = t.path("units");
    fs::create_dir(&dir).unwrap();
    let cairn = assert_cmd::cargo::cargo_bin("cairn");
    for entry in fs::read_dir(units_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let text = text.replace("/usr/local/bin/cairn", cairn.to_str().unwrap());
        fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    for unit in [
        "cairn@app.service",
        "cairn@app.timer",
        "cairn-verify@app.service",
        "cairn-verify@app.timer",
        "cairn-failure@cairn@app.service.service",
    ] {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.join(unit))
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert!(out.status.success(), "{unit}: {err}");
        assert_eq!(err, "", "{unit}: warnings");
    }
    // It does check: a unit whose command is missing fails.
    let broken = fs::read_to_string(dir.join("cairn@.service"))
        .unwrap()
        .replace(cairn.to_str().unwrap(), "/nonexistent/cairn");
    fs::write(dir.join("broken@.service"), broken).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("broken@app.service"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr_of(&out));
}
