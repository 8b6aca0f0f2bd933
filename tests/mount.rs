//! `cairn mount`: a real FUSE mount of real stores (local and S3), looked
//! at with the tools an operator would use: `diff -r`, `sqlite3
//! -readonly`, reads at random offsets, by-date paths, a damaged pack,
//! SIGTERM. Issue #20. Every test unmounts in its teardown (`fusermount
//! -u`), pass or fail. Skipped only where `/dev/fuse` is absent.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Whether FUSE can be used here; says why not when it cannot.
fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    eprintln!("skipping: /dev/fuse is absent, so nothing can be mounted here");
    false
}

/// How long a mount may take to appear, or a new snapshot to show (a
/// wait, not an assertion about speed).
const PATIENCE: Duration = Duration::from_secs(120);

/// A running `cairn mount`; unmounted and stopped when dropped.
struct Mount {
    child: Option<Child>,
    at: PathBuf,
    stderr: PathBuf,
}

impl Mount {
    fn start(t: &TestEnv, extra: &[&str]) -> Mount {
        let at = t.fresh_dir("mnt");
        fs::create_dir(&at).unwrap();
        let stderr = t.path(format!(
            "{}.stderr",
            at.file_name().unwrap().to_str().unwrap()
        ));
        let child = t
            .command(["mount"])
            .arg(&at)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut mount = Mount {
            child: Some(child),
            at,
            stderr,
        };
        mount.wait_until_mounted();
        mount
    }

    fn wait_until_mounted(&mut self) {
        let started = Instant::now();
        while !self.at.join("snapshots").exists() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("cairn mount exited with {status}: {}", self.stderr());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "not mounted: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.at.join(rel)
    }

    /// The snapshot directory of `source` in the newest snapshot.
    fn latest(&self, source: &Path) -> PathBuf {
        self.path("snapshots/latest")
            .join(source.strip_prefix("/").unwrap())
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to end.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait().unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount")
            .args(["-u", "-z"])
            .arg(&self.at)
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(path))
}

/// A tree with symlinks (relative, absolute, dangling) and odd names.
fn odd_tree(t: &TestEnv) -> PathBuf {
    let src = t.path("src");
    small_tree(&src, 11);
    write_file(&src.join("with space and\nnewline"), b"odd\n");
    write_file(&src.join(raw(b"not-utf8-\xff\xfe")), b"bytes\n");
    write_file(&src.join("sub/\u{e9}t\u{e9}.txt"), b"accents\n");
    make_symlink("a.txt", &src.join("rel-link"));
    make_symlink("/etc/hostname", &src.join("abs-link"));
    make_symlink("nowhere/at/all", &src.join("dangling"));
    chmod(&src.join("a.txt"), 0o640);
    settle();
    src
}

#[test]
fn a_mounted_snapshot_is_the_tree_it_came_from() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = odd_tree(&t);
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&src)
        .arg(m.latest(&src))
        .output()
        .unwrap();
    assert!(diff.status.success(), "diff -r: {}", stderr_of(&diff));
    assert!(
        diff.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // Modes, owners, mtimes to the nanosecond and link targets, too.
    assert_trees_equal(&src, &m.latest(&src));
}

/// `sqlite3 -readonly DB SQL`'s output; asserts it succeeded.
fn sqlite3(db: &str, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .args(["-readonly", db, sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "sqlite3 {db}: {}", stderr_of(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn fill_database(path: &Path, journal_mode: &str) {
    let conn = open_in_mode(path, journal_mode);
    conn.execute_batch(
        "CREATE TABLE t(x INTEGER, pad TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, hex(randomblob(100)) FROM n;",
    )
    .unwrap();
}

#[test]
fn sqlite3_reads_a_database_inside_the_mount_read_only() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("db");
    fs::create_dir(&src).unwrap();
    fill_database(&src.join("app.db"), "DELETE");
    fill_database(&src.join("wal.db"), "WAL");
    settle();
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    let sql = "PRAGMA integrity_check; SELECT count(*), sum(x) FROM t;";
    let db = m.latest(&src).join("app.db");
    assert_eq!(sqlite3(db.to_str().unwrap(), sql), "ok\n20000|200010000\n");
    // SQLite opens a WAL database read-only only beside its -shm, which a
    // read-only file system cannot give it: `immutable=1` (README).
    let wal = format!(
        "file:{}?immutable=1",
        m.latest(&src).join("wal.db").display()
    );
    assert_eq!(sqlite3(&wal, sql), "ok\n20000|200010000\n");
}

#[test]
fn by_date_resolves_a_day_to_the_last_snapshot_taken_by_its_end() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    for (night, time) in [
        ("night 1", "2026-02-14T02:30:00Z"),
        ("night 2", "2026-02-15T02:30:00Z"),
        ("night 2, noon", "2026-02-15T12:00:00Z"),
    ] {
        write_file(&src.join("state.txt"), night.as_bytes());
        settle();
        t.snapshot(&[&src], &["--time", time]);
    }
    let m = Mount::start(&t, &[]);
    let state = |dir: &str| {
        fs::read_to_string(
            m.path(dir)
                .join(src.strip_prefix("/").unwrap())
                .join("state.txt"),
        )
        .unwrap()
    };
    assert_eq!(state("by-date/2026-02-14"), "night 1");
    assert_eq!(state("by-date/2026-02-15"), "night 2, noon");
    assert_eq!(
        state("by-date/2026-03-01"),
        "night 2, noon",
        "a day without snapshots shows the last one before it"
    );
    assert!(
        !m.path("by-date/2026-02-13").exists(),
        "before the first snapshot"
    );
    assert_eq!(names(&m.path("by-date/2026/02")), ["14", "15"]);
    let day = names(&m.path("by-date/2026/02/15"));
    assert_eq!(day.len(), 2, "{day:?}");
    assert!(day[0].to_str().unwrap().starts_with("2026-02-15T02:30:00_"));
    let listed = names(&m.path("by-date"));
    assert!(listed.contains(&"2026-02-14".into()), "{listed:?}");
    assert_eq!(
        fs::read_link(m.path("snapshots/latest")).unwrap(),
        day[1],
        "latest is the newest snapshot"
    );
}

#[test]
fn reads_at_random_offsets_of_a_large_file_return_the_source_bytes() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big.bin"), 5, 24 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    let want = fs::read(src.join("big.bin")).unwrap();
    let m = Mount::start(&t, &["--cache-size", "4MiB"]);
    let file = File::open(m.latest(&src).join("big.bin")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), want.len() as u64);
    let mut rng = Rng::new(42);
    for _ in 0..400 {
        let len = (rng.next_u64() % 300_000) as usize + 1;
        let offset = (rng.next_u64() % (want.len() as u64 - 1)) as usize;
        let mut got = vec![0u8; len];
        let n = file.read_at(&mut got, offset as u64).unwrap();
        let end = (offset + len).min(want.len());
        assert_eq!(n, end - offset, "read of {len} at {offset}");
        assert!(
            got[..n] == want[offset..end],
            "bytes differ at {offset}+{len}"
        );
    }
    let mut tail = vec![0u8; 10];
    let n = file.read_at(&mut tail, want.len() as u64 - 3).unwrap();
    assert_eq!(tail[..n], want[want.len() - 3..], "the last bytes");
    assert_eq!(
        file.read_at(&mut tail, want.len() as u64).unwrap(),
        0,
        "EOF"
    );
}

/// A sparse file reads through the mount as it is: zeros in its holes
/// (which the store does not hold), its data around them.
#[test]
fn a_sparse_file_reads_with_zeros_in_its_holes() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let path = src.join("sparse.img");
    let file = File::create(&path).unwrap();
    file.write_all_at(&random_bytes(1, 1 << 20), 5 << 20)
        .unwrap();
    file.write_all_at(&random_bytes(2, 100_000), 20 << 20)
        .unwrap();
    file.set_len(30 << 20).unwrap();
    drop(file);
    settle();
    t.snapshot(&[&src], &[]);
    let want = fs::read(&path).unwrap();
    let m = Mount::start(&t, &["--cache-size", "4MiB"]);
    let mounted = m.latest(&src).join("sparse.img");
    assert!(fs::read(&mounted).unwrap() == want, "whole file differs");
    let file = File::open(&mounted).unwrap();
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        let len = (rng.next_u64() % 3_000_000) as usize + 1;
        let offset = (rng.next_u64() % want.len() as u64) as usize;
        let mut got = vec![0u8; len];
        let n = file.read_at(&mut got, offset as u64).unwrap();
        let end = (offset + len).min(want.len());
        assert!(
            got[..n] == want[offset..end],
            "bytes differ at {offset}+{len}"
        );
    }
}

/// Names of one hard link group share their inode number in the mount,
/// as they did in the source; other files do not.
#[test]
fn hard_links_share_an_inode_number() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    write_file(&src.join("a"), b"linked content");
    fs::hard_link(src.join("a"), src.join("sub/b")).unwrap();
    write_file(&src.join("c"), b"linked content");
    settle();
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    let root = m.latest(&src);
    let ino = |name: &str| fs::metadata(root.join(name)).unwrap().ino();
    assert_eq!(ino("a"), ino("sub/b"));
    assert_ne!(ino("a"), ino("c"));
    // With a link count of 1, `cp -a` (and rsync -H, tar) from the mount
    // made two files of them.
    assert!(fs::metadata(root.join("a")).unwrap().nlink() >= 2);
    let copy = t.path("copied");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    let copied = |name: &str| fs::metadata(copy.join(name)).unwrap().ino();
    assert_eq!(copied("a"), copied("sub/b"));
}

/// A hard-linked file in two snapshots, its mode changed in between, kept
/// one inode number: the first node the mount met answered for both, and
/// the older snapshot showed the newer mode (`cp -a` from it copied that).
#[test]
fn a_hard_linked_file_shows_each_snapshots_own_metadata() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("f"), b"linked content");
    fs::hard_link(src.join("f"), src.join("g")).unwrap();
    chmod(&src.join("f"), 0o644);
    settle();
    let first = id(&t.snapshot(&[&src], &[])).to_owned();
    chmod(&src.join("f"), 0o600);
    settle();
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    let older = names(&m.path("snapshots"))
        .into_iter()
        .find(|n| n.to_string_lossy().contains(&first[..8]))
        .unwrap();
    let older = m
        .path("snapshots")
        .join(older)
        .join(src.strip_prefix("/").unwrap());
    let mode = |dir: &Path| fs::metadata(dir.join("f")).unwrap().mode() & 0o7777;
    assert_eq!(mode(&m.latest(&src)), 0o600);
    assert_eq!(mode(&older), 0o644);
    assert_eq!(
        mode(&m.latest(&src)),
        0o600,
        "the newer one, looked up again"
    );
    let ino = |dir: &Path, name: &str| fs::metadata(dir.join(name)).unwrap().ino();
    assert_eq!(ino(&older, "f"), ino(&older, "g"));
}

/// A directory of the mount at two paths shared one inode number (an
/// unchanged directory in two snapshots; a snapshot under `snapshots/` and
/// `hosts/HOST/`). The kernel keeps one dentry per directory inode and
/// moves it to where it was last looked up, so `..` inside the older
/// snapshot led into the newer one after anyone browsed it, and
/// `cat ../../changing` read the newer snapshot's bytes.
#[test]
fn dot_dot_stays_in_the_snapshot_and_path_it_was_entered_by() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(src.join("p/q/r")).unwrap();
    write_file(&src.join("p/changing"), b"OLDVALUE\n");
    settle();
    let first = id(&t.snapshot(&[&src], &[])).to_owned();
    write_file(&src.join("p/changing"), b"NEWVALUE\n");
    settle();
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    let older = names(&m.path("snapshots"))
        .into_iter()
        .find(|n| n.to_string_lossy().contains(&first[..8]))
        .unwrap();
    let inside = |top: &Path| top.join(src.strip_prefix("/").unwrap()).join("p/q/r");
    let old_r = inside(&m.path("snapshots").join(&older));
    let new_r = inside(&m.path("snapshots/latest"));
    let host = names(&m.path("hosts")).into_iter().next().unwrap();
    let by_host = inside(&m.path("hosts").join(host).join(&older));
    let script = "cd \"$1\" && cat ../../changing && ls \"$2\" \"$3\" >/dev/null \
                  && cat ../../changing && pwd -P";
    let out = Command::new("sh")
        .args(["-c", script, "sh"])
        .args([&old_r, &new_r, &by_host])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["OLDVALUE", "OLDVALUE"], "{stdout}");
    assert_eq!(lines[2], old_r.to_str().unwrap(), "{stdout}");
}

/// The largest pack of a local store (the data pack).
fn largest_pack(store: &Path) -> PathBuf {
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    for dir in fs::read_dir(store.join("packs")).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            let f = f.unwrap();
            packs.push((f.metadata().unwrap().len(), f.path()));
        }
    }
    packs.into_iter().max().unwrap().1
}

#[test]
fn a_byte_flipped_in_a_pack_gives_eio_and_a_warning_never_wrong_bytes() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big.bin"), 9, 6 << 20);
    write_file(&src.join("small.txt"), b"untouched\n");
    settle();
    t.snapshot(&[&src], &[]);
    let pack = largest_pack(&t.store);
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    fs::write(&pack, bytes).unwrap();

    let m = Mount::start(&t, &[]);
    let mut got = Vec::new();
    let err = File::open(m.latest(&src).join("big.bin"))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "EIO, not {err}");
    let want = fs::read(src.join("big.bin")).unwrap();
    assert!(
        want.starts_with(&got),
        "bytes before the damage are the right ones"
    );
    let stderr = m.stderr();
    assert!(
        stderr.contains("warning") && stderr.contains("big.bin"),
        "{stderr}"
    );
    assert!(stderr.contains("EIO"), "{stderr}");
    assert_eq!(
        fs::read(m.latest(&src).join("small.txt")).unwrap(),
        b"untouched\n",
        "the rest still reads"
    );
}

#[test]
fn a_sequential_read_of_many_chunks_returns_the_source_bytes() {
    // Reads in order have the next chunks read ahead on other threads;
    // what arrives must still be the file, chunk after chunk, across the
    // read-ahead window (8 MiB) and with a cache too small to hold much.
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big.bin"), 7, 40 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    let want = fs::read(src.join("big.bin")).unwrap();
    for cache in ["256MiB", "6MiB"] {
        let m = Mount::start(&t, &["--cache-size", cache]);
        let got = fs::read(m.latest(&src).join("big.bin")).unwrap();
        assert_eq!(got.len(), want.len(), "with a cache of {cache}");
        assert!(got == want, "bytes differ with a cache of {cache}");
    }
}

#[test]
fn a_damaged_chunk_read_ahead_gives_eio_only_where_it_is_read() {
    // Reading in order reads the damaged chunk ahead, where its failure
    // is silent; it must not take the chunks after it down, and reading it
    // must still answer EIO (never wrong bytes).
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big.bin"), 3, 16 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    let pack = largest_pack(&t.store);
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    fs::write(&pack, bytes).unwrap();
    let want = fs::read(src.join("big.bin")).unwrap();

    let m = Mount::start(&t, &[]);
    let file = File::open(m.latest(&src).join("big.bin")).unwrap();
    let piece = 64 << 10;
    let mut failed = Vec::new();
    for offset in (0..want.len()).step_by(piece) {
        let mut got = vec![0u8; piece];
        match file.read_at(&mut got, offset as u64) {
            Ok(n) => assert!(
                got[..n] == want[offset..offset + n],
                "bytes differ at {offset}"
            ),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(5), "EIO at {offset}, not {e}");
                failed.push(offset);
            }
        }
    }
    assert!(!failed.is_empty(), "the damaged chunk gave EIO");
    let (first, last) = (failed[0], failed[failed.len() - 1]);
    assert!(
        last - first < 4 << 20 && failed.len() == (last - first) / piece + 1,
        "EIO only within one chunk (at most 4 MiB): {failed:?}"
    );
    assert!(
        last + piece < want.len(),
        "the damage is not at the end, so chunks after it were read: {failed:?}"
    );
}

#[test]
fn sigterm_unmounts_and_exits_0() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    settle();
    t.snapshot(&[&src], &[]);
    let mut m = Mount::start(&t, &[]);
    assert!(is_mounted(&m.at));
    let status = m.terminate();
    assert_eq!(status.code(), Some(0), "{}", m.stderr());
    assert!(!is_mounted(&m.at), "still mounted");
    assert!(names(&m.at).is_empty(), "the mount point is empty again");
    assert!(m.stderr().contains("unmounted"), "{}", m.stderr());
}

#[test]
fn new_snapshots_appear_without_remounting() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 4);
    settle();
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    assert_eq!(
        names(&m.path("snapshots")).len(),
        2,
        "one snapshot and latest"
    );
    write_file(&src.join("new.txt"), b"tonight\n");
    settle();
    t.snapshot(&[&src], &[]);
    let started = Instant::now();
    while names(&m.path("snapshots")).len() < 3 {
        assert!(
            started.elapsed() < PATIENCE,
            "the new snapshot never showed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fs::read(m.latest(&src).join("new.txt")).unwrap(),
        b"tonight\n"
    );
}

#[test]
fn a_snapshot_in_s3_mounts_and_diffs_equal_to_its_source() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_s3();
    let src = t.path("src");
    small_tree(&src, 8);
    write_random_file(&src.join("big.bin"), 8, 5 << 20);
    settle();
    t.snapshot(&[&src], &["--tag", "nightly"]);
    let m = Mount::start(&t, &[]);
    let host = names(&m.path("hosts"));
    assert_eq!(host.len(), 1, "{host:?}");
    let by_tag = m
        .path("tags/nightly/latest")
        .join(src.strip_prefix("/").unwrap());
    assert_trees_equal(&src, &by_tag);
}

#[test]
fn an_encrypted_store_mounts_and_a_tampered_chunk_gives_eio_not_bytes() {
    // #18: the mount reads through the same opened, verified blobs.
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_encrypted_store();
    let src = t.path("src");
    small_tree(&src, 9);
    write_random_file(&src.join("big.bin"), 9, 6 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    let m = Mount::start(&t, &[]);
    let latest = m
        .path("snapshots/latest")
        .join(src.strip_prefix("/").unwrap());
    assert_trees_equal(&src, &latest);
    drop(m);
    let pack = largest_pack(&t.store);
    let mut bytes = fs::read(&pack).unwrap();
    // The middle of the pack: inside big.bin's chunks, most of the pack.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&pack, bytes).unwrap();
    let m = Mount::start(&t, &[]);
    let big = m
        .path("snapshots/latest")
        .join(src.strip_prefix("/").unwrap())
        .join("big.bin");
    let read = fs::read(&big);
    assert!(read.is_err(), "a tampered chunk was read through the mount");
}

#[test]
fn a_missing_or_non_empty_mount_point_is_refused_naming_it() {
    let t = TestEnv::with_store();
    let missing = t.path("no-such-dir");
    let out = t.cairn(["mount"]).arg(&missing).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(missing.to_str().unwrap()) && stderr.contains("does not exist"),
        "{stderr}"
    );
    let full = t.path("full");
    write_file(&full.join("precious.txt"), b"keep me\n");
    let out = t.cairn(["mount"]).arg(&full).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(full.to_str().unwrap()) && stderr.contains("not empty"),
        "{stderr}"
    );
    assert!(!is_mounted(&full));
    assert_eq!(fs::read(full.join("precious.txt")).unwrap(), b"keep me\n");
}

/// A mount whose process was killed (`kill -9`) stays in the kernel's
/// table; mounting there again said only "Transport endpoint is not
/// connected". It names the way out.
#[test]
fn mounting_over_a_mount_whose_process_was_killed_names_fusermount() {
    if !fuse_available() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 12);
    t.snapshot(&[&src], &[]);
    let mut m = Mount::start(&t, &[]);
    let mut child = m.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = t.cairn(["mount"]).arg(&m.at).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&format!("fusermount -u {}", m.at.display())),
        "{err}"
    );
    // Below it, the mount named is the dead one, not the path given.
    let out = t.cairn(["mount"]).arg(m.at.join("sub")).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&format!("fusermount -u {}`", m.at.display())),
        "{err}"
    );
}
