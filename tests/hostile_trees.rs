//! Hostile stores: trees that are valid one by one but that make a reader
//! work without end (one subtree shared down many levels, a chain of
//! directories thousands deep), and entries that decode but that a restore
//! would refuse. The stores are crafted through the library (the pack
//! pipeline and the record commit a snapshot uses), as an attacker with
//! write access to the store, or a bug, would leave them.
//!
//! Every command runs with a generous kill deadline: without the bounds a
//! reader plans or streams for hours, and the test must fail, not hang. The
//! deadline asserts nothing about speed.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn::capture::pipeline;
use cairn::id::{BlobId, TreeId};
use cairn::pack::BlobKind;
use cairn::progress::Progress;
use cairn::rawname::RawName;
use cairn::snapshot::{self, RECORD_VERSION, SnapshotRecord, Summary};
use cairn::store::{LockMode, OpenOptions, Store};
use cairn::tree::{ChangeKey, Content, Entry, Hole, Meta, Timespec, Tree};
use common::*;
use serde_json::Value;

/// Long enough for any bounded command on a loaded machine; an unbounded
/// one is killed here instead of running for hours.
const DEADLINE: Duration = Duration::from_secs(120);

fn meta(mode: u32, size: u64) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        size,
        mtime: Timespec {
            sec: 1_700_000_000,
            nsec: 0,
        },
        ..Meta::default()
    }
}

fn name(bytes: &[u8]) -> RawName {
    RawName::from_bytes(bytes.to_vec())
}

fn file(n: &[u8], chunks: Vec<BlobId>, size: u64) -> Entry {
    Entry {
        name: name(n),
        meta: meta(0o644, size),
        content: Content::File {
            chunks,
            change: ChangeKey {
                inode: 1,
                ctime: None,
            },
            database: None,
            link: None,
            holes: Vec::new(),
        },
    }
}

fn dir(n: &[u8], tree: TreeId) -> Entry {
    Entry {
        name: name(n),
        meta: meta(0o755, 0),
        content: Content::Dir { tree },
    }
}

fn symlink(n: &[u8], target: &[u8]) -> Entry {
    Entry {
        name: name(n),
        meta: meta(0o777, target.len() as u64),
        content: Content::Symlink {
            target: name(target),
        },
    }
}

/// Writes into a store as a snapshot would: blobs through the pack
/// pipeline, then a record. Trees are stored exactly as given (unsorted or
/// badly named ones too).
struct Crafter {
    store: Store,
}

impl Crafter {
    fn open(t: &TestEnv) -> Self {
        let store = Store::open(
            &cairn::store::Location::Local(t.store.clone()),
            OpenOptions::new(LockMode::Shared),
        )
        .unwrap();
        Self { store }
    }

    /// Stores `blobs` (kind, bytes) and returns their ids.
    fn put(&self, blobs: Vec<(BlobKind, Vec<u8>)>) -> Vec<BlobId> {
        let trainer = cairn::capture::trainer::Trainer::for_store(&self.store).unwrap();
        let (ids, _, _) = pipeline::run(&self.store, &trainer, &Progress::default(), |sink| {
            blobs
                .into_iter()
                .map(|(kind, bytes)| sink.put(kind, bytes))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
        ids
    }

    fn tree(&self, tree: &Tree) -> TreeId {
        self.put(vec![(BlobKind::Tree, tree.encode())])[0].as_tree()
    }

    /// A chain of trees built bottom up: `level(below)` makes the tree one
    /// level up from the one below it.
    fn stack(&self, bottom: Tree, levels: usize, level: impl Fn(TreeId) -> Tree) -> TreeId {
        let mut trees = vec![bottom];
        for _ in 0..levels {
            let below = TreeId::of(&trees.last().unwrap().encode());
            trees.push(level(below));
        }
        let blobs = trees.iter().map(|t| (BlobKind::Tree, t.encode())).collect();
        self.put(blobs).last().unwrap().as_tree()
    }

    /// Commits a snapshot of `/h` whose tree is `top`, with the counts its
    /// record claims; returns its id.
    fn commit(&self, top: TreeId, files: u64, dirs: u64, symlinks: u64) -> String {
        let root = self.tree(&Tree::new(vec![dir(b"h", top)]));
        let record = SnapshotRecord {
            version: RECORD_VERSION,
            time: "2026-04-01T02:00:00Z".parse().unwrap(),
            host: "hostile".into(),
            paths: vec![name(b"/h")],
            tags: vec![],
            tree: root,
            parent: None,
            program: "crafted".into(),
            format: None,
            summary: Summary {
                files,
                dirs,
                symlinks,
                ..Summary::default()
            },
        };
        snapshot::commit(self.store.backend(), self.store.catalog(), record)
            .unwrap()
            .id
            .to_hex()
    }
}

/// Runs `cairn ARGS` with stdout thrown away (an unbounded listing would
/// fill memory), killing it at the deadline.
fn run_bounded(t: &TestEnv, args: &[&str]) -> Output {
    let mut child = t
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "cairn {args:?} still running after {DEADLINE:?}: {}",
                stderr_of(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts that `cairn ARGS` fails with exit 1 and a message containing `want`.
fn refuses(t: &TestEnv, args: &[&str], want: &str) {
    let out = run_bounded(t, args);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "cairn {args:?}: {err}");
    assert!(err.contains(want), "cairn {args:?}: {err}");
}

/// `verify --json ARGS`: exit code and report, killed at the deadline.
fn verify(t: &TestEnv, args: &[&str]) -> (i32, Value) {
    let mut cmd = t.command(["--json", "verify"]);
    cmd.args(args);
    let out = output_bounded(cmd);
    (out.status.code().unwrap(), parse_json(&out.stdout))
}

fn output_bounded(mut cmd: Command) -> Output {
    let path = std::env::temp_dir().join(format!(
        "cairn-hostile-{}-{:?}.out",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = fs::File::create(&path).unwrap();
    let mut child = cmd.stdout(file).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            let _ = fs::remove_file(&path);
            panic!("still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = child.wait_with_output().unwrap();
    out.stdout = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    out
}

/// The damage entries of a verify report of `kind`.
fn damage_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["damage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == kind)
        .collect()
}

/// Every (snapshot, path) a damage entry names.
fn affected(damage: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in damage["affected"].as_array().unwrap() {
        for p in a["paths"].as_array().unwrap() {
            out.push((
                a["snapshot"].as_str().unwrap().to_owned(),
                p.as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// A store with an honest snapshot of a small tree and a crafted one of
/// `/h` holding 2^40 paths: 40 levels of two entries (`a`, `b`) naming the
/// same subtree, with one empty file at the bottom. Its record says what a
/// small tree would: 1 file, 41 directories.
fn forty_levels_of_two(t: &TestEnv) -> (String, String) {
    let src = t.path("src");
    small_tree(&src, 1);
    let honest = id(&t.snapshot(&[&src], &[])).to_owned();
    let c = Crafter::open(t);
    let bottom = Tree::new(vec![file(b"f", vec![], 0)]);
    let top = c.stack(bottom, 40, |below| {
        Tree::new(vec![dir(b"a", below), dir(b"b", below)])
    });
    let hostile = c.commit(top, 1, 41, 0);
    (honest, hostile)
}

// Regression: #14 item 6
#[test]
fn a_subtree_shared_down_forty_levels_is_refused_by_every_reader_instead_of_expanded() {
    let t = TestEnv::with_store();
    let (honest, hostile) = forty_levels_of_two(&t);
    let short = &hostile[..8];
    let why = "expand to";
    let target = t.path("out");
    let target = target.to_str().unwrap();
    refuses(&t, &["restore", short, "--target", target], why);
    assert!(
        fs::read_dir(target).map_or(0, |d| d.count()) == 0,
        "a refused restore writes nothing"
    );
    refuses(&t, &["restore", short, "--tar", "-"], why);
    refuses(
        &t,
        &["restore", short, "--tar", "-", "--include", "/h/a"],
        why,
    );
    refuses(&t, &["ls", "-R", short], why);
    refuses(&t, &["ls", "-R", short, "/h/b/a"], why);
    refuses(&t, &["find", "zzz"], why);
    refuses(&t, &["diff", &honest, short], why);
    refuses(&t, &["diff", short, &honest], why);
    // The message names the snapshot.
    let out = run_bounded(&t, &["ls", "-R", short]);
    assert!(stderr_of(&out).contains(short), "{}", stderr_of(&out));

    let (code, report) = verify(&t, &[]);
    assert_eq!(code, 4, "{report}");
    let trees = damage_of(&report, "tree");
    assert_eq!(trees.len(), 1, "{report}");
    assert!(
        trees[0]["cause"].as_str().unwrap().contains(why),
        "{report}"
    );
    assert_eq!(affected(trees[0]), [(hostile.clone(), "/".to_owned())]);
    // The honest snapshot is untouched by it.
    let (code, report) = verify(&t, &["--snapshot", &honest]);
    assert_eq!(code, 0, "{report}");
    t.restore(&honest);
}

/// Identical directories legitimately share one tree id: hard links to one
/// file in directories of the same metadata make every leaf directory the
/// same tree. Sharing alone is not damage; the count is the test.
#[test]
fn identical_directories_sharing_one_tree_restore_list_and_verify_clean() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let one = t.path("one");
    write_file(&one, b"the same file everywhere");
    for i in 0..8 {
        for j in 0..8 {
            let leaf = src.join(format!("d{i}/e{j}"));
            fs::create_dir_all(&leaf).unwrap();
            fs::hard_link(&one, leaf.join("x")).unwrap();
        }
    }
    for i in 0..8 {
        for j in 0..8 {
            set_mtime(&src.join(format!("d{i}/e{j}")), 1_600_000_000, 0);
        }
        set_mtime(&src.join(format!("d{i}")), 1_600_000_000, 0);
    }
    assert_eq!(fs::metadata(&one).unwrap().nlink(), 65);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "files"), 64);
    assert!(summary(&snap, "tree_blobs_new") < 10, "{snap}");
    let restored = t.restore(id(&snap));
    assert_eq!(
        count_tree(&restored.join(src.strip_prefix("/").unwrap())).files,
        64
    );
    let out = t.cairn(["ls", "-R", "latest"]).assert().success();
    let lines = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .count();
    assert!(lines > 64 + 72, "{lines}");
    t.cairn(["verify", "--read-data"]).assert().success();
}

/// `/h` holding `depth` directories `d`, each inside the last, with one
/// empty file at the bottom; the record counts them honestly.
fn nested(t: &TestEnv, depth: usize) -> String {
    let c = Crafter::open(t);
    let bottom = Tree::new(vec![file(b"f", vec![], 0)]);
    let top = c.stack(bottom, depth, |below| Tree::new(vec![dir(b"d", below)]));
    c.commit(top, 1, depth as u64 + 1, 0)
}

// Regression: #14 item 6
#[test]
fn a_tree_nested_thousands_deep_is_refused_without_overflowing_the_stack() {
    let t = TestEnv::with_store();
    let deep = nested(&t, 5000);
    let short = &deep[..8];
    let why = "deeper than";
    let target = t.path("out");
    let target = target.to_str().unwrap();
    refuses(&t, &["restore", short, "--target", target], why);
    refuses(&t, &["restore", short, "--tar", "-"], why);
    refuses(&t, &["ls", "-R", short], why);
    refuses(&t, &["find", "f"], why);
    let src = t.path("src");
    small_tree(&src, 2);
    let honest = id(&t.snapshot(&[&src], &[])).to_owned();
    refuses(&t, &["diff", &honest, short], why);
    refuses(&t, &["diff", short, &honest], why);
    let (code, report) = verify(&t, &[]);
    assert_eq!(code, 4, "{report}");
    let trees = damage_of(&report, "tree");
    assert_eq!(trees.len(), 1, "{report}");
    assert!(
        trees[0]["cause"].as_str().unwrap().contains(why),
        "{report}"
    );
    assert_eq!(affected(trees[0]), [(deep.clone(), "/".to_owned())]);
}

// Regression: #14 item 6
#[test]
fn repair_of_a_store_with_a_hostile_tree_ends_and_repairs_the_honest_snapshots() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    write_random_file(&src.join("doomed.bin"), 7, 100_000);
    let honest = id(&t.snapshot(&[&src], &[])).to_owned();
    // The hostile trees need a blob that is then lost, as the honest
    // snapshot does: a bottom file whose chunk is not in the store, both
    // down forty shared levels and down five thousand nested ones.
    let c = Crafter::open(&t);
    let lost = BlobId::of(b"never stored");
    let bottom = Tree::new(vec![file(b"f", vec![lost], 12)]);
    let wide = c.stack(bottom.clone(), 40, |below| {
        Tree::new(vec![dir(b"a", below), dir(b"b", below)])
    });
    c.commit(wide, 1, 41, 0);
    let deep = c.stack(bottom, 5000, |below| Tree::new(vec![dir(b"d", below)]));
    c.commit(deep, 1, 5001, 0);
    drop(c);
    let doomed = BlobId::of(&fs::read(src.join("doomed.bin")).unwrap());
    let catalog = cairn::catalog::Catalog::open(&t.store.join("catalog.db")).unwrap();
    let at = catalog.locate(&doomed).unwrap().unwrap();
    drop(catalog);
    let pack = t.store.join(cairn::pack::key(&at.pack));
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at.offset as usize + 10] ^= 0x5a;
    fs::write(&pack, bytes).unwrap();

    let mut cmd = t.command(["--json", "repair", "snapshots"]);
    cmd.stdin(Stdio::null());
    let out = output_bounded(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = parse_json(&out.stdout);
    assert_eq!(
        report["refused_snapshots"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    let repaired = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["original"] == honest.as_str())
        .unwrap_or_else(|| panic!("{report}"));
    let new = repaired["new"].as_str().unwrap();
    let target = t.restore(new);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert!(!restored.join("doomed.bin").exists());
    assert_eq!(count_tree(&restored).files, count_tree(&src).files - 1);
}

/// A snapshot of `/h` holding `entries`, next to the data they need.
fn with_entries(t: &TestEnv, entries: Vec<Entry>, files: u64, symlinks: u64) -> String {
    let c = Crafter::open(t);
    let top = c.tree(&Tree::new(entries));
    c.commit(top, files, 1, symlinks)
}

/// Verify (structure only, and with --read-data) reports exactly one
/// damage of `kind` naming `path` in `snapshot`, whose cause contains `why`.
fn verify_names(t: &TestEnv, snapshot: &str, kind: &str, path: &str, why: &str) {
    for args in [&[][..], &["--read-data"][..]] {
        let (code, report) = verify(t, args);
        assert_eq!(code, 4, "verify {args:?}: {report}");
        let found = damage_of(&report, kind);
        assert_eq!(found.len(), 1, "verify {args:?}: {report}");
        assert!(
            found[0]["cause"].as_str().unwrap().contains(why),
            "verify {args:?}: {report}"
        );
        assert_eq!(
            affected(found[0]),
            [(snapshot.to_owned(), path.to_owned())],
            "verify {args:?}: {report}"
        );
    }
}

// Regression: #14 item 6
#[test]
fn verify_reports_a_file_whose_recorded_size_is_not_the_sum_of_its_chunks() {
    let t = TestEnv::with_store();
    let c = Crafter::open(&t);
    let chunks = c.put(vec![
        (BlobKind::Data, b"hello ".to_vec()),
        (BlobKind::Data, b"world".to_vec()),
    ]);
    drop(c);
    let snap = with_entries(
        &t,
        vec![
            file(b"good", chunks.clone(), 11),
            file(b"long", chunks.clone(), 12),
            file(b"short", chunks, 10),
        ],
        3,
        0,
    );
    let (code, report) = verify(&t, &["--read-data"]);
    assert_eq!(code, 4, "{report}");
    let entries = damage_of(&report, "entry");
    let mut named: Vec<_> = entries.iter().flat_map(|d| affected(d)).collect();
    named.sort();
    assert_eq!(
        named,
        [
            (snap.clone(), "/h/long".to_owned()),
            (snap.clone(), "/h/short".to_owned())
        ],
        "{report}"
    );
    for d in &entries {
        let cause = d["cause"].as_str().unwrap();
        assert!(cause.contains("11"), "{cause}");
    }
    let (code, structure) = verify(&t, &[]);
    assert_eq!(code, 4, "{structure}");
    assert_eq!(damage_of(&structure, "entry").len(), 2, "{structure}");
    // What verify names is what restore refuses.
    let target = t.fresh_dir("out");
    let out = t
        .cairn(["restore", &snap, "--target"])
        .arg(&target)
        .output()
        .unwrap();
    // Regression: #19 (per-item failures exited 1, as if nothing was
    // restored): the rest is restored, and damaged data is exit 4.
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(fs::read(target.join("h/good")).unwrap(), b"hello world");
    assert!(!target.join("h/long").exists());
    // `cat` stops before a byte beyond the recorded size reaches stdout.
    let out = t.cairn(["cat", &snap, "/h/short"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("recorded 10"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(out.stdout, b"hello ", "no more than its first whole chunk");
}

/// `file` with `holes` as (offset, length).
fn with_holes(mut entry: Entry, list: &[(u64, u64)]) -> Entry {
    if let Content::File { holes, .. } = &mut entry.content {
        *holes = list
            .iter()
            .map(|&(offset, len)| Hole { offset, len })
            .collect();
    }
    entry
}

#[test]
fn a_file_with_holes_restores_with_zeros_and_bad_holes_are_damage_that_restore_refuses() {
    let t = TestEnv::with_store();
    let c = Crafter::open(&t);
    let chunks = c.put(vec![(BlobKind::Data, b"data".to_vec())]);
    drop(c);
    let good = with_holes(file(b"good", chunks.clone(), 10), &[(0, 3), (7, 3)]);
    let bad = with_holes(file(b"overlap", chunks, 10), &[(0, 4), (3, 2)]);
    let snap = with_entries(&t, vec![good, bad], 2, 0);
    verify_names(&t, &snap, "entry", "/h/overlap", "holes");
    let target = t.fresh_dir("out");
    let out = t
        .cairn(["restore", &snap, "--target"])
        .arg(&target)
        .output()
        .unwrap();
    // Since #19 a restore restores the rest, and an entry the store
    // recorded wrongly is damage (exit 4), as verify reports it.
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("overlap: the file's holes"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        fs::read(target.join("h/good")).unwrap(),
        b"\0\0\0data\0\0\0"
    );
    assert!(!target.join("h/overlap").exists());
    let cat = t.cairn(["cat", &snap, "/h/good"]).assert().success();
    assert_eq!(cat.get_output().stdout, b"\0\0\0data\0\0\0");
}

// Regression: #14 item 6
#[test]
fn verify_reports_a_symlink_with_an_empty_target() {
    let t = TestEnv::with_store();
    let snap = with_entries(&t, vec![symlink(b"l", b""), symlink(b"ok", b"x")], 0, 2);
    verify_names(&t, &snap, "entry", "/h/l", "empty");
}

// Regression: #14 item 6
#[test]
fn verify_reports_a_symlink_whose_target_holds_a_nul_byte() {
    let t = TestEnv::with_store();
    let snap = with_entries(&t, vec![symlink(b"l", b"a\0b")], 0, 1);
    verify_names(&t, &snap, "entry", "/h/l", "NUL");
}

/// A tree that breaks a naming rule cannot be read at all (the decoder
/// refuses it), so verify names the directory that holds it.
fn verify_names_bad_tree(entries: Vec<Entry>) {
    let t = TestEnv::with_store();
    let c = Crafter::open(&t);
    let bad = c.tree(&Tree { entries });
    let top = c.tree(&Tree::new(vec![dir(b"bad", bad)]));
    let snap = c.commit(top, 1, 2, 0);
    drop(c);
    verify_names(&t, &snap, "blob", "/h/bad", "tree does not read");
}

#[test]
fn verify_reports_a_tree_with_an_empty_dot_dotdot_slash_or_nul_name() {
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        verify_names_bad_tree(vec![file(bad, vec![], 0)]);
    }
}

#[test]
fn verify_reports_a_tree_with_duplicate_or_unsorted_names() {
    verify_names_bad_tree(vec![file(b"a", vec![], 0), file(b"a", vec![], 0)]);
    verify_names_bad_tree(vec![file(b"b", vec![], 0), file(b"a", vec![], 0)]);
}

// Regression: #14 item 6
#[test]
fn a_directory_nested_deeper_than_readers_accept_is_left_out_of_a_snapshot_in_a_small_stack() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    // Deeper than any reader accepts, counting from `/`.
    let mut deepest = src.clone();
    for _ in 0..1100 {
        deepest.push("d");
    }
    fs::create_dir_all(&deepest).unwrap();
    write_file(&deepest.join("f"), b"deep");
    write_file(&src.join("top"), b"top");
    // The walk recurses once per level: it must stop in time, even in a
    // small stack.
    let (code, out, err) = small_stack(&t, &["--json", "snapshot", src.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("deeper than"), "{err}");
    let snap = parse_json(&out);
    let target = t.restore(id(&snap));
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(fs::read(restored.join("top")).unwrap(), b"top");
    t.cairn(["ls", "-R", "latest"]).assert().success();
    t.cairn(["verify"]).assert().success();
}

/// `cmd` run under a 1 MiB stack limit (`ulimit -s`, as in some
/// containers): cairn must not depend on the main thread's stack.
fn in_small_stack(cmd: Command) -> Command {
    let mut small = Command::new("sh");
    small
        .args(["-c", "ulimit -s 1024 && exec \"$0\" \"$@\""])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => small.env(key, value),
            None => small.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        small.current_dir(dir);
    }
    small
}

/// `cairn ARGS` in a small stack: exit code, stdout, stderr.
fn small_stack(t: &TestEnv, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = output_bounded(in_small_stack(t.command(args)));
    (
        out.status.code().unwrap_or(-1),
        out.stdout.clone(),
        stderr_of(&out),
    )
}

// Regression: #14 item 6
/// The deepest tree readers accept: `/h` and 1023 directories below it
/// (1024 levels), with a file at the bottom whose chunk is lost. Every
/// reader walks it, the recursive ones included, and repair rewrites it,
/// even under a 1 MiB stack limit.
#[test]
fn a_tree_exactly_as_deep_as_readers_accept_is_read_verified_and_repaired_in_a_small_stack() {
    let t = TestEnv::with_store();
    let c = Crafter::open(&t);
    let kept = c.put(vec![(BlobKind::Data, b"kept".to_vec())]);
    let lost = BlobId::of(b"never stored");
    let bottom = Tree::new(vec![file(b"f", vec![lost], 12), file(b"g", kept, 4)]);
    let top = c.stack(bottom, 1023, |below| Tree::new(vec![dir(b"d", below)]));
    let snap = c.commit(top, 2, 1024, 0);
    drop(c);
    let deepest = format!("/h{}", "/d".repeat(1023));
    for args in [
        &["ls", "-R", &snap][..],
        &["find", "g"],
        &["cat", &snap, &format!("{deepest}/g")],
    ] {
        let (code, _, err) = small_stack(&t, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, out, err) = small_stack(&t, &["--json", "verify"]);
    let report = parse_json(&out);
    assert_eq!(code, 4, "{report} {err}");
    let blobs = damage_of(&report, "blob");
    assert_eq!(blobs.len(), 1, "{report}");
    assert_eq!(affected(blobs[0]), [(snap.clone(), format!("{deepest}/f"))]);

    let (code, out, err) = small_stack(&t, &["--json", "repair", "snapshots"]);
    assert_eq!(code, 0, "{err}");
    let report = parse_json(&out);
    let new = report["snapshots"][0]["new"].as_str().unwrap().to_owned();
    let (code, report) = verify(&t, &["--snapshot", &new]);
    assert_eq!(code, 0, "{report}");
    let listed = t.snapshots(&[]);
    let record = listed.iter().find(|s| s["id"] == new.as_str()).unwrap();
    assert_eq!(record["summary"]["files"], 1, "{record}");
    assert_eq!(record["summary"]["total_bytes"], 4, "{record}");
    let target = t.path("out");
    for args in [
        &["diff", &snap, &new][..],
        &["restore", &new, "--tar", "-"],
        &["restore", &new, "--target", target.to_str().unwrap()],
    ] {
        let (code, _, err) = small_stack(&t, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    assert_eq!(
        fs::read(target.join(&deepest[1..]).join("g")).unwrap(),
        b"kept"
    );
}

/// `file` in hard link group `group`.
fn in_link_group(mut entry: Entry, group: u64) -> Entry {
    if let Content::File { link, .. } = &mut entry.content {
        *link = Some(group);
    }
    entry
}

// A link group is a claim of the tree, not a proof: names whose recorded
// content differs (a crafted tree, or a file rewritten between the reads
// of its names) must each restore their own bytes, never the first's.
#[test]
fn names_of_one_link_group_with_different_content_each_restore_their_own_bytes() {
    let t = TestEnv::with_store();
    let c = Crafter::open(&t);
    let one = c.put(vec![(BlobKind::Data, b"first".to_vec())]);
    let two = c.put(vec![(BlobKind::Data, b"second".to_vec())]);
    drop(c);
    let a = in_link_group(file(b"a", one.clone(), 5), 7);
    let b = in_link_group(file(b"b", two, 6), 7);
    let c = in_link_group(file(b"c", one, 5), 7);
    let snap = with_entries(&t, vec![a, b, c], 3, 0);
    let target = t.fresh_dir("out");
    t.cairn(["restore", &snap, "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(fs::read(target.join("h/a")).unwrap(), b"first");
    assert_eq!(fs::read(target.join("h/b")).unwrap(), b"second");
    assert_eq!(fs::read(target.join("h/c")).unwrap(), b"first");
    let ino = |n: &str| fs::metadata(target.join(n)).unwrap().ino();
    assert_eq!(ino("h/a"), ino("h/c"));
    let tar = t.cairn(["restore", &snap, "--tar", "-"]).assert().success();
    let mut archive = tar::Archive::new(&tar.get_output().stdout[..]);
    let mut bodies = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let link = entry.link_name().unwrap().map(|l| l.into_owned());
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
        bodies.push((path, link, body));
    }
    let b = bodies.iter().find(|e| e.0.ends_with("h/b")).unwrap();
    assert_eq!((b.1.clone(), &b.2[..]), (None, &b"second"[..]));
}

// `find` stopped at the first snapshot with a lost tree (exit 4), never
// searching the others: the lost directory is named, the rest searched.
#[test]
fn find_names_a_lost_directory_and_searches_everything_else() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("app.db"), b"honest");
    let honest = t.snapshot(&[&src], &[]);
    let c = Crafter::open(&t);
    let chunks = c.put(vec![(BlobKind::Data, b"crafted".to_vec())]);
    let empty = c.tree(&Tree::new(vec![]));
    drop(c);
    let lost = TreeId::of(b"a tree that was never stored");
    let crafted = with_entries(
        &t,
        vec![
            file(b"app.db", chunks, 7),
            dir(b"gone", lost),
            dir(b"keep", empty),
        ],
        1,
        0,
    );
    let out = t.cairn(["find", "app.db"]).output().unwrap();
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr_of(&out));
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        stdout.contains(&crafted[..8]) && stdout.contains("/h/app.db"),
        "{stdout}"
    );
    assert!(stdout.contains(&id(&honest)[..8]), "{stdout}");
    assert!(err.contains("/h/gone not searched"), "{err}");
    assert!(!err.contains("/h/keep"), "{err}");
    assert!(err.contains("`cairn verify` says what is lost"), "{err}");
}
