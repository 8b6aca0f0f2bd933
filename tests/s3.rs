//! Stores in S3-compatible object storage, against a real S3 server on
//! 127.0.0.1 (moto, started by the harness): every command of the README
//! as it works locally, a second host with a cold cache, the index
//! objects, the request counts, bad locations and credentials. Faults
//! (503s, dropped connections) are in `s3_faults.rs`. Issue #15.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

/// A source tree with a few files, a symlink and a live WAL database.
fn sources(t: &TestEnv) -> std::path::PathBuf {
    let src = t.path("src");
    small_tree(&src, 7);
    write_random_file(&src.join("big.bin"), 3, 6 << 20);
    let conn = open_in_mode(&src.join("app.db"), "WAL");
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('first night');")
        .unwrap();
    drop(conn);
    settle();
    src
}

/// The key of the store's largest pack (a data pack).
fn largest_pack(t: &TestEnv) -> String {
    let (pack, _) = t
        .s3()
        .keys("packs/")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .unwrap();
    pack
}

fn requests(snapshot: &Value) -> &Value {
    &snapshot["summary"]["requests"]
}

#[test]
fn a_snapshot_in_s3_restores_byte_for_byte_by_id_and_by_time() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    let first = t.snapshot(&[&src], &[]);
    assert!(requests(&first)["put"].as_u64().unwrap() >= 3, "{first}");
    assert_eq!(t.s3().count("index/"), 1, "one index object per snapshot");
    assert_trees_equal(&src, &restored(&t.restore(id(&first)), &src));

    write_file(&src.join("new.txt"), b"second night");
    settle();
    let second = t.snapshot(&[&src], &[]);
    let at = first["time"].as_str().unwrap();
    let target = t.fresh_dir("at");
    t.cairn(["restore", "--at", at, "--target"])
        .arg(&target)
        .assert()
        .success();
    assert!(!restored(&target, &src).join("new.txt").exists());
    assert_trees_equal(&src, &restored(&t.restore(id(&second)), &src));
}

#[test]
fn browsing_commands_work_on_an_s3_store() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    let first = t.snapshot(&[&src], &[]);
    write_file(&src.join("added.txt"), b"added");
    settle();
    let second = t.snapshot(&[&src], &[]);

    let ls = t.cairn(["ls", "latest"]).arg(&src).assert().success();
    assert!(String::from_utf8_lossy(&ls.get_output().stdout).contains("added.txt"));
    let cat = t
        .cairn(["cat", "latest"])
        .arg(src.join("added.txt"))
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, b"added");
    let diff = t
        .cairn(["diff", id(&first), id(&second)])
        .assert()
        .success();
    assert!(
        String::from_utf8_lossy(&diff.get_output().stdout).contains("+ "),
        "{}",
        String::from_utf8_lossy(&diff.get_output().stdout)
    );
    let find = t.cairn(["find", "*.db"]).assert().success();
    assert!(String::from_utf8_lossy(&find.get_output().stdout).contains("app.db"));
    t.cairn(["verify"]).assert().success();
    t.cairn(["verify", "--read-data", "--sqlite"])
        .assert()
        .success();
}

#[test]
fn a_second_host_with_a_cold_cache_restores_a_snapshot_it_never_saw() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    let snap = t.snapshot(&[&src], &[]);
    let other = t.second_host();
    let list = other.snapshots(&[]);
    assert_eq!(list.len(), 1);
    let back = restored(&other.restore(id(&snap)), &src);
    assert_trees_equal(&src, &back);
    // The database restored whole and consistent.
    let conn = rusqlite::Connection::open(back.join("app.db")).unwrap();
    let x: String = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, "first night");
}

#[test]
fn an_unchanged_nightly_snapshot_costs_a_handful_of_requests() {
    let t = TestEnv::with_s3();
    let src = t.path("src");
    for d in 0..20 {
        small_tree(&src.join(format!("dir{d}")), d);
    }
    settle();
    t.snapshot(&[&src], &[]);
    let again = t.snapshot(&[&src], &[]);
    let r = requests(&again);
    let total: u64 = ["get", "put", "list", "delete", "head"]
        .iter()
        .map(|k| r[k].as_u64().unwrap())
        .sum();
    // 7 here: LISTs of index/, snapshots/ and condemned/, and 4 GETs (the
    // config among them); a GET per directory would be 20 more. A full
    // suite once saw more than 8 (not reproduced since): the bound leaves
    // room without letting a per-directory read through.
    assert!(
        total <= 10,
        "a no-change snapshot made {total} requests: {r}"
    );
    assert_eq!(
        again["summary"]["files_unchanged"],
        again["summary"]["files"]
    );
}

#[test]
fn forget_and_prune_free_space_and_keep_every_remaining_snapshot_whole() {
    let t = TestEnv::with_s3();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let mut snaps = Vec::new();
    for night in 0..4u64 {
        if night > 0 {
            fs::remove_file(src.join(format!("night{}", night - 1))).unwrap();
        }
        write_random_file(&src.join(format!("night{night}")), night, 2 << 20);
        settle();
        snaps.push(t.snapshot(&[&src], &["--tag", "nightly"]));
    }
    let before = t.s3().size("packs/");
    // Two phases: the first prune condemns what is dead, a later one past
    // the grace period deletes it.
    let out = t
        .cairn([
            "--json",
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--grace",
            "0s",
        ])
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert!(
        report["prune"]["packs_condemned"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(t.s3().size("packs/"), before, "the first phase deleted");
    t.cairn(["prune", "--grace", "0s"]).assert().success();
    assert!(t.s3().size("packs/") < before, "prune freed nothing");
    let last = snaps.last().unwrap();
    assert_trees_equal(&src, &restored(&t.restore(id(last)), &src));
    t.cairn(["verify", "--read-data"]).assert().success();
    // A fresh host builds a catalog from the index objects prune left.
    let other = t.second_host();
    other.cairn(["verify", "--read-data"]).assert().success();
    assert_trees_equal(&src, &restored(&other.restore(id(last)), &src));
}

// After forget and a prune that condemned a snapshot's packs, a snapshot
// of the same data wrote a pack byte for byte the condemned one (the same
// id, as packs are named by their hash): its fence found every copy of its
// blobs condemned, its rescue wrote that pack once more, and it failed
// after three rounds blaming a concurrent prune (exit 1), night after
// night until a later prune settled the condemnation.
#[test]
fn a_snapshot_of_data_whose_packs_are_condemned_stores_it_in_packs_of_its_own() {
    let t = TestEnv::with_s3();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("db.dump"), 41, 3 << 20);
    fs::write(src.join("app.conf"), "conf\n").unwrap();
    let first = t.snapshot(&[&src], &[]);
    t.cairn(["forget", id(&first)]).assert().success();
    let out = t
        .cairn(["--json", "prune", "--grace", "0s"])
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert!(report["packs_condemned"].as_u64().unwrap() > 0, "{report}");
    let again = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&again)), &src));
    // The condemned packs go; the new snapshot does not go with them.
    t.cairn(["prune", "--grace", "0s"]).assert().success();
    let other = t.second_host();
    other.cairn(["verify", "--read-data"]).assert().success();
    assert_trees_equal(&src, &restored(&other.restore(id(&again)), &src));
}

#[test]
fn repair_catalog_rebuilds_from_index_objects_or_else_from_pack_headers() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    let snap = t.snapshot(&[&src], &[]);
    let out = t.cairn(["--json", "repair", "catalog"]).assert().success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["index_objects"], 1, "{report}");
    assert_eq!(report["packs_from_headers"], 0, "{report}");

    // Every index object lost: the packs' own headers are read, and a new
    // index object names them for the next host.
    for (key, _) in t.s3().keys("index/") {
        t.s3().delete(&key);
    }
    let out = t.cairn(["--json", "repair", "catalog"]).assert().success();
    let report = parse_json(&out.get_output().stdout);
    assert!(
        report["packs_from_headers"].as_u64().unwrap() >= 2,
        "{report}"
    );
    assert_eq!(t.s3().count("index/"), 1);
    let other = t.second_host();
    assert_trees_equal(&src, &restored(&other.restore(id(&snap)), &src));
}

#[test]
fn a_damaged_index_object_is_reported_and_repaired_from_pack_headers() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    let snap = t.snapshot(&[&src], &[]);
    let (key, _) = t.s3().keys("index/").remove(0);
    t.s3().flip_byte(&key, 20);
    let other = t.second_host();
    let out = other.cairn(["snapshots"]).assert().success();
    assert!(
        stderr_of(out.get_output()).contains(&key),
        "{}",
        stderr_of(out.get_output())
    );
    other.cairn(["repair", "catalog"]).assert().success();
    // Either gone, or written anew under the same name (the same packs in
    // the same order make the same object): never the damaged bytes.
    if let Some(bytes) = t.s3().get(&key) {
        let name = key.trim_start_matches("index/");
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            name,
            "the damaged index object stays"
        );
    }
    assert_trees_equal(&src, &restored(&other.restore(id(&snap)), &src));
}

#[test]
fn a_restore_needing_a_pack_the_bucket_lost_exits_4_and_says_what_to_run() {
    let t = TestEnv::with_s3();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random_file(&src.join("big.bin"), 7, 1 << 20);
    t.snapshot(&[&src], &[]);
    let pack = largest_pack(&t);
    t.s3().delete(&pack);
    let (_, err) = t.restore_ending(4);
    assert!(err.contains(pack.rsplit('/').next().unwrap()), "{err}");
    assert!(
        err.contains("1 file needs a pack the store does not have: if another host pruned this store, `cairn repair catalog` (run while no other host writes)"),
        "{err}"
    );
}

// A pack lost behind cairn's back, then `verify` (whose second look drops
// a missing pack from this host's catalog) and `repair snapshots`: the
// repair no longer knew the pack, left the index object naming it in the
// store, and a host whose catalog had learnt the pack before committed a
// snapshot on it (exit 0; a restore elsewhere exit 4).
#[test]
fn after_verify_and_repair_no_host_reuses_a_pack_the_bucket_lost() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    t.snapshot(&[&src], &[]);
    let other = t.second_host();
    other.cairn(["snapshots"]).assert().success();
    let pack = largest_pack(&t);
    t.s3().delete(&pack);
    t.cairn(["verify", "--read-data"]).assert().code(4);
    t.cairn(["repair", "snapshots"]).assert().success();
    let again = other.snapshot(&[&src], &[]);
    let third = other.second_host();
    assert_trees_equal(&src, &restored(&third.restore(id(&again)), &src));
}

/// Asserts that `init` is refused as "already exists" (exit 1) and leaves
/// `config.json` holding `config`.
fn assert_init_refused_over(t: &TestEnv, config: &[u8]) {
    let out = t.cairn(["init", "--no-encrypt"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(t.s3().get("config.json").unwrap(), config);
}

#[test]
fn init_twice_is_refused_and_leaves_the_store_as_it_was() {
    let t = TestEnv::with_s3();
    let config = t.s3().get("config.json").unwrap();
    assert_init_refused_over(&t, &config);
}

/// An object already at the config's key that is larger than the config
/// this init writes, by two bytes or more, is another store's: "already
/// exists". Was: "GET config.json: 389 bytes, larger than the 388 bytes
/// such an object may have" (the read back was capped at the new config's
/// length + 1), whenever two inits' configs differed so in length: the
/// test above failed so in a CI run.
#[test]
fn init_over_a_larger_object_at_the_config_key_is_refused_as_already_there() {
    let t = TestEnv::new_s3();
    let other = vec![b' '; 4096];
    t.s3().put("config.json", &other);
    assert_init_refused_over(&t, &other);
}

/// `ObjectPath::from` percent-encodes `~`, `#`, non-ASCII letters and
/// others: such a store was written under the encoded prefix, the keys a
/// listing gave back kept it, they did not match the store's own, and the
/// store looked empty. It now lives at its prefix as written.
#[test]
fn a_store_at_a_prefix_with_characters_s3_paths_escape_lists_and_restores() {
    let t = TestEnv::new_s3_at("~alice/été #1");
    t.cairn(["init", "--no-encrypt"]).assert().success();
    let src = t.path("src");
    small_tree(&src, 6);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(t.snapshots(&[]).len(), 1);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
    let out = t.cairn(["init", "--no-encrypt"]).assert().code(1);
    assert!(stderr_of(out.get_output()).contains("already exists"));
    // Where the URL says, not under a percent-encoded name other tools
    // would not find.
    let in_bucket = t.s3().sibling("").bucket_keys();
    let config = in_bucket.iter().find(|(k, _)| k.ends_with("config.json"));
    assert_eq!(
        config.map(|(k, _)| k.as_str()),
        Some("~alice/été #1/config.json")
    );
}

#[test]
fn an_unknown_scheme_is_a_usage_error_naming_the_supported_ones() {
    let t = TestEnv::new();
    for store in ["sftp://host/backups", "gs://bucket/x"] {
        let out = t
            .cairn_without_store(["--store", store, "snapshots"])
            .assert()
            .code(2);
        let err = stderr_of(out.get_output());
        assert!(err.contains("s3://BUCKET"), "{err}");
    }
    assert!(!t.path("sftp:").exists() && !t.path("gs:").exists());
}

#[test]
fn a_missing_bucket_or_bad_credentials_say_so_in_one_line_without_creating_anything() {
    let t = TestEnv::with_s3();
    let mut missing = TestEnv::new();
    missing.location = StoreLocation::S3 {
        store: s3::S3Store::without_bucket("cairn-no-such-bucket"),
        endpoint: s3::server().endpoint(),
    };
    let out = missing.cairn(["init", "--no-encrypt"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("s3://cairn-no-such-bucket") && err.contains("NoSuchBucket"),
        "{err}"
    );

    let out = t
        .cairn(["snapshots"])
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env_remove("AWS_ACCESS_KEY_ID")
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Every command opening a store in a bucket that does not exist said the
/// store was "not a cairn store (it has no config.json)": a 404 for the
/// config was taken as the config's absence, though the server's answer
/// was NoSuchBucket. Found by review.
#[test]
fn a_missing_bucket_is_named_as_such_by_every_command_not_as_a_missing_config() {
    let mut missing = TestEnv::new();
    missing.location = StoreLocation::S3 {
        store: s3::S3Store::without_bucket("cairn-no-such-bucket"),
        endpoint: s3::server().endpoint(),
    };
    for args in [&["snapshots"][..], &["snapshot", "."], &["prune"]] {
        let out = missing.cairn(args).assert().code(1);
        let err = stderr_of(out.get_output());
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("s3://cairn-no-such-bucket") && err.contains("NoSuchBucket"),
            "{err}"
        );
        assert!(!err.contains("not a cairn store"), "{err}");
    }
    // A bucket that exists with no store in it is still "not a cairn store".
    let t = TestEnv::new_s3();
    t.s3().put("other/file", b"x");
    let out = t.cairn(["snapshots"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("not a cairn store"), "{err}");
}

#[test]
fn an_unreachable_endpoint_fails_with_exit_1_and_no_backtrace() {
    let t = TestEnv::with_s3();
    let out = t
        .cairn(["--retries", "0", "snapshots"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.starts_with("cairn: error: s3://"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn a_local_store_upgraded_to_format_3_is_indexed_before_its_config_says_so() {
    let t = TestEnv::new();
    copy_tree(Path::new("tests/fixtures/v1"), &t.store);
    t.cairn(["snapshots"]).assert().success();
    assert!(
        !t.store.join("index").exists()
            || fs::read_dir(t.store.join("index")).unwrap().count() == 0
    );
    let src = t.path("src");
    small_tree(&src, 1);
    settle();
    t.snapshot(&[&src], &[]);
    let config: Value = parse_json(&fs::read(t.store.join("config.json")).unwrap());
    assert_eq!(config["version"], 8);
    let indexes = fs::read_dir(t.store.join("index")).unwrap().count();
    assert!(
        indexes >= 2,
        "the old packs and the new snapshot are indexed ({indexes})"
    );
    // A catalog built from the index objects alone knows every old blob.
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = fs::remove_file(t.store.join(f));
    }
    t.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn verify_names_a_damaged_index_object_as_damage() {
    let t = TestEnv::with_s3();
    let src = sources(&t);
    t.snapshot(&[&src], &[]);
    let (key, _) = t.s3().keys("index/").remove(0);
    t.s3().flip_byte(&key, 30);
    let out = t.cairn(["--json", "verify"]).assert().code(4);
    let report = parse_json(&out.get_output().stdout);
    let named = report["damage"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["kind"] == "index" && d["key"] == key.as_str());
    assert!(named, "{report}");
}

// Regression: #15 section 4 (restore made one GET per chunk: 968 GETs
// where restic made 4).
#[test]
fn a_restore_fetches_each_pack_with_a_few_requests_not_one_per_chunk() {
    let t = TestEnv::new_s3();
    // Small packs, so the tree spans several of them.
    t.cairn(["init", "--no-encrypt", "--pack-size", "1MiB"])
        .assert()
        .success();
    let src = t.path("src");
    for i in 0..400u64 {
        let len = 1000 + (i * 37 % 4000) as usize;
        write_file(
            &src.join(format!("d{}/f{i}.bin", i / 40)),
            &random_bytes(i, len),
        );
    }
    write_random_file(&src.join("big.bin"), 9, 3 << 20);
    settle();
    let snap = t.snapshot(&[&src], &[]);
    let packs = t.s3().count("packs/") as u64;
    let target = t.fresh_dir("restore");
    let out = t
        .cairn(["--json", "restore", id(&snap), "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_trees_equal(&src, &restored(&target, &src));
    let report = parse_json(&out.get_output().stdout);
    let gets = report["requests"]["get"].as_u64().unwrap();
    // A GET per pack (the tree packs come from the cache the snapshot
    // filled), and a few for the config and the snapshot record.
    assert!(
        gets <= packs + 4,
        "restoring 400 files from {packs} packs made {gets} GETs: {report}"
    );
    let human = t
        .cairn(["restore", id(&snap), "--target"])
        .arg(t.fresh_dir("restore"))
        .assert()
        .success();
    let said = String::from_utf8_lossy(&human.get_output().stdout).into_owned();
    assert!(said.contains("requests: "), "{said}");
}
