//! An S3 store behind a fault-injecting TCP proxy (the harness's, between
//! the real `cairn` and the real loopback S3 server): answers of 503,
//! connections dropped in the middle of an upload, slow answers. Transient
//! failures are retried; a snapshot commits whole or leaves no record and
//! the rerun reuses what was uploaded; a prune that fails deletes nothing
//! it has not committed to deleting. Issue #15, section 5.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::time::Duration;

use common::proxy::{FaultProxy, Outcome};
use common::*;

fn s3_through_proxy() -> (TestEnv, FaultProxy) {
    let mut t = TestEnv::with_s3();
    let proxy = FaultProxy::to_s3();
    t.through(&proxy);
    (t, proxy)
}

#[test]
fn answers_of_503_are_retried_and_the_snapshot_commits() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 1);
    write_random_file(&src.join("big"), 2, 3 << 20);
    settle();
    proxy.aim("PUT", 0);
    proxy.slow_down(3);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(proxy.count_outcome(Outcome::SlowDown), 3);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

#[test]
fn a_connection_dropped_in_the_middle_of_an_upload_is_retried() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big"), 3, 6 << 20);
    settle();
    proxy.drop_mid_body(1 << 20, 1);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(proxy.count_outcome(Outcome::Dropped), 1);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
    t.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn a_slow_server_is_waited_for() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 4);
    settle();
    proxy.delay(Duration::from_millis(300));
    let snap = t.snapshot(&[&src], &[]);
    proxy.pass_through();
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

/// An uninitialised store reached through a proxy whose next PUT is
/// carried out by the server with its answer lost (the connection reset).
/// A server whose listing hands back the continuation token it gave
/// before (a bug some S3-compatible servers have had) kept every command
/// listing the store (`snapshots`, verify, prune) asking for pages for
/// ever. It stops at the repeated token, exit 1, naming it.
#[test]
fn a_listing_that_runs_in_a_loop_is_an_error_not_a_hang() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 5);
    settle();
    t.snapshot(&[&src], &[]);
    proxy.aim_at_all();
    proxy.loop_listings();
    let out = t
        .cairn(["snapshots"])
        .timeout(Duration::from_secs(120))
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("continuation token"), "{err}");
    assert!(err.contains("again"), "{err}");
    assert!(proxy.count_outcome(Outcome::Looped) <= 3, "{err}");
}

/// `object_store` sends a delete as a bulk `POST ?delete` and does not
/// resend it once its answer is lost: `forget` exited 1 ("error sending
/// request") though the record was gone, and so did prunes on flaky
/// networks. A delete is the same done twice; it is resent.
#[test]
fn a_delete_whose_answer_is_lost_is_sent_again_and_forget_succeeds() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 6);
    settle();
    for _ in 0..3 {
        t.snapshot(&[&src], &[]);
    }
    proxy.aim_at("POST", "delete");
    proxy.lose_answers(1);
    t.cairn(["forget", "--keep-last", "1"]).assert().success();
    assert_eq!(proxy.count_outcome(Outcome::AnswerLost), 1);
    assert_eq!(t.snapshots(&[]).len(), 1);
}

/// Every answer to the PUT of a snapshot's record lost (the server carried
/// the first out): the snapshot was committed and visible, and the command
/// exited 1, which says nothing was. The record is looked at after the last
/// attempt: there, it is a committed snapshot (exit 0).
#[test]
fn a_record_whose_every_answer_is_lost_but_which_landed_is_a_committed_snapshot() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 7);
    settle();
    proxy.aim_at("PUT", "/snapshots/");
    proxy.lose_answers(3);
    let out = t
        .cairn(["--retries", "2", "--json", "snapshot"])
        .arg(&src)
        .assert()
        .success();
    assert_eq!(proxy.count_outcome(Outcome::AnswerLost), 3);
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(t.snapshots(&[]).len(), 1);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

/// A listing's answer cut off in its body ("Error getting list response
/// body") was not asked for again: every command listing the store
/// failed on one dropped connection.
#[test]
fn a_listing_cut_off_in_its_body_is_asked_for_again() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 8);
    settle();
    t.snapshot(&[&src], &[]);
    proxy.aim_at("GET", "list-type=2");
    proxy.cut_answers(300, 1);
    let out = t.cairn(["snapshots"]).assert().success();
    assert_eq!(proxy.count_outcome(Outcome::AnswerCut), 1);
    let listed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        listed.lines().count(),
        2,
        "a heading and the snapshot:\n{listed}"
    );
}

/// A request is timed whole, its upload included: at a fixed 120 s, every
/// pack over an uplink too slow to send it in that time was cut off and sent
/// again from its start until the retries ran out. The limit is
/// `--request-timeout` now (10 minutes unless given), and a request cut off
/// by it says so.
#[test]
fn a_request_slower_than_request_timeout_names_the_option_and_a_longer_one_waits() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 9);
    settle();
    proxy.aim_at("PUT", "/packs/");
    proxy.delay(Duration::from_secs(3));
    let out = t
        .cairn(["--retries", "0", "--request-timeout", "1s", "snapshot"])
        .arg(&src)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("--request-timeout"), "{err}");
    assert!(t.snapshots(&[]).is_empty());
    // A timeout no request can meet is a usage error, not a failed night.
    for none in ["0s", "0", "500ms"] {
        let out = t
            .cairn(["--request-timeout", none, "snapshots"])
            .assert()
            .code(2);
        assert!(stderr_of(out.get_output()).contains("at least 1s"));
    }
    t.cairn(["--retries", "0", "--request-timeout", "20s", "snapshot"])
        .arg(&src)
        .assert()
        .success();
    assert_eq!(t.snapshots(&[]).len(), 1);
}

/// A server that never answers a listing: each page is asked for
/// `--retries` more times, not that many times over (`object_store`
/// retries a timed-out GET itself, and resending its final error made
/// (N+1)^2 requests: 9 for --retries 2, and hours at the defaults).
#[test]
fn a_stalled_listing_is_tried_retries_plus_one_times_not_their_square() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 10);
    settle();
    t.snapshot(&[&src], &[]);
    proxy.aim_at("GET", "list-type=2");
    proxy.delay(Duration::from_secs(4));
    proxy.reset_seen();
    t.cairn(["--retries", "2", "--request-timeout", "1s", "snapshots"])
        .assert()
        .code(1);
    let listings = proxy
        .seen()
        .iter()
        .filter(|s| s.target.contains("list-type=2"))
        .count();
    assert!(listings <= 3, "{listings} listing requests");
}

fn first_put_answer_lost() -> (TestEnv, FaultProxy) {
    let mut t = TestEnv::new_s3();
    let proxy = FaultProxy::to_s3();
    t.through(&proxy);
    proxy.aim("PUT", 0);
    proxy.lose_answers(1);
    (t, proxy)
}

#[test]
fn an_init_whose_answer_is_lost_after_the_store_was_created_succeeds() {
    let (t, proxy) = first_put_answer_lost();
    t.cairn(["init", "--no-encrypt"]).assert().success();
    assert_eq!(proxy.count_outcome(Outcome::AnswerLost), 1);
    let src = t.path("src");
    small_tree(&src, 1);
    settle();
    let snap = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

#[test]
fn a_second_init_finds_the_store_in_its_listing_and_sends_no_put() {
    let (t, proxy) = first_put_answer_lost();
    proxy.pass_through();
    t.cairn(["init", "--no-encrypt"]).assert().success();
    let config = t.s3().get("config.json").unwrap();
    let puts = proxy.count("PUT");
    let out = t.cairn(["init", "--no-encrypt"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(proxy.count("PUT"), puts);
    assert_eq!(t.s3().get("config.json").unwrap(), config);
}

/// Two encrypted inits of one prefix at once: the second lists the prefix
/// while the first waits between its key file and its config, so it is
/// the first's conditional create that finds the store, and its refusal
/// is lost on the way back.
#[test]
fn of_two_inits_at_once_the_one_whose_refusal_is_lost_says_the_store_exists() {
    let mut t = TestEnv::new_s3();
    let proxy = FaultProxy::to_s3();
    t.through(&proxy);
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    let mut first = t.command(["init", "--encrypt"]);
    first.args(FAST_KDF);
    let first = common::stall::spawn_stalled(first, "init-keys-written", 3);
    let out = t.init_encrypt().assert().success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("removed 1 key file left by an init"), "{err}");
    let config = t.s3().get("config.json").unwrap();
    let keys = t.s3().keys("keys/");
    proxy.aim("PUT", 0);
    proxy.lose_answers(1);
    let lost = first.wait_with_output().unwrap();
    assert_eq!(lost.status.code(), Some(1), "{lost:?}");
    assert_eq!(proxy.count_outcome(Outcome::AnswerLost), 1);
    assert_eq!(t.s3().get("config.json").unwrap(), config);
    assert_eq!(
        t.s3().keys("keys/"),
        keys,
        "only the store's own key is left"
    );
    t.cairn(["snapshots"]).assert().success();
}

// S3 answers a conditional create with 409 while another write of the
// key is in flight; object_store calls that "already exists", and the
// object, not there, was reported as "404 Not Found" on a GET the user
// never asked for. It is read again for a while, then created anew.
#[test]
fn a_create_answered_with_a_conflict_is_read_again_then_created_and_init_succeeds() {
    let mut t = TestEnv::new_s3();
    let proxy = FaultProxy::to_s3();
    t.through(&proxy);
    proxy.aim("PUT", 0);
    proxy.conflict(1);
    t.cairn(["init", "--no-encrypt"]).assert().success();
    assert_eq!(proxy.count_outcome(Outcome::Conflict), 1);
    assert!(t.s3().get("config.json").is_some());
    t.cairn(["snapshots"]).assert().success();
}

// A lease create answered only after its time to live could have passed
// (retried after a lost answer, it finds its own bytes) was taken as held,
// while another prune could already have taken the next generation.
#[test]
fn a_prune_lease_that_took_too_long_to_take_is_given_up_before_anything_changes() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    small_tree(&src, 1);
    settle();
    t.snapshot(&[&src], &[]);
    t.cairn(["forget", "--keep-last", "1"]).assert().success();
    let before = t.s3().keys("");
    // A quarter of a 4 s time to live is 1 s; every PUT takes 1.5 s.
    proxy.aim("PUT", 0);
    proxy.delay(Duration::from_millis(1500));
    let out = t
        .cairn(["prune"])
        .env("CAIRN_PRUNE_LEASE_TTL", "4s")
        .assert()
        .code(1);
    proxy.pass_through();
    let err = stderr_of(out.get_output());
    assert!(err.contains("lost the store's prune lease"), "{err}");
    let outside_leases = |keys: Vec<(String, u64)>| -> Vec<_> {
        keys.into_iter()
            .filter(|(k, _)| !k.starts_with("leases/"))
            .collect()
    };
    assert_eq!(outside_leases(t.s3().keys("")), outside_leases(before));
}

/// Packs of about a MiB: the first 16 are indexed in the middle of the run.
const MANY_PACKS_BYTES: u64 = 48 << 20;

fn many_packs(t: &TestEnv) -> std::path::PathBuf {
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..4 {
        write_random_file(&src.join(format!("part{i}")), 10 + i, MANY_PACKS_BYTES / 4);
    }
    settle();
    src
}

#[test]
fn a_snapshot_cut_off_mid_upload_commits_nothing_and_the_rerun_uploads_only_the_rest() {
    let mut t = TestEnv::new_s3();
    t.cairn(["init", "--no-encrypt", "--pack-size", "1MiB"])
        .assert()
        .success();
    let proxy = FaultProxy::to_s3();
    t.through(&proxy);
    let src = many_packs(&t);
    // Past the first index object, every upload fails for good. It is
    // written after 16 packs, while up to 4 uploaders may have started
    // the next packs: it is at most the 21st PUT (20 was a race lost
    // about one run in three).
    proxy.aim("PUT", 24);
    proxy.slow_down(10_000);
    let out = t
        .cairn(["--retries", "0", "snapshot"])
        .arg(&src)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("503") || err.contains("Slow"), "{err}");
    proxy.pass_through();
    assert!(t.snapshots(&[]).is_empty(), "a partial snapshot is listed");
    assert!(t.s3().count("index/") >= 1, "nothing uploaded was indexed");

    let rerun = t.snapshot(&[&src], &[]);
    let up = rerun["summary"]["requests"]["bytes_up"].as_u64().unwrap();
    let total = 80u64 << 20;
    assert!(
        up < total / 2,
        "the rerun uploaded {up} of {total} bytes again"
    );
    assert_trees_equal(&src, &restored(&t.restore(id(&rerun)), &src));
}

#[test]
fn a_prune_that_fails_deletes_nothing_it_had_not_committed_to_deleting() {
    let (t, proxy) = s3_through_proxy();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let mut last = None;
    for night in 0..3u64 {
        write_random_file(&src.join("data"), night, 3 << 20);
        settle();
        last = Some(t.snapshot(&[&src], &[]));
    }
    t.cairn(["forget", "--keep-last", "1"]).assert().success();
    // Deletions fail: the prune stops, and what it left must still read.
    proxy.aim("DELETE", 0);
    proxy.slow_down(10_000);
    let post_deletes = || proxy.count("POST");
    let before = post_deletes();
    let out = t.cairn(["--retries", "0", "prune"]).assert();
    proxy.pass_through();
    let _ = (out, before);
    let last = last.unwrap();
    assert_trees_equal(&src, &restored(&t.restore(id(&last)), &src));
    t.cairn(["verify", "--read-data"]).assert().success();
    t.cairn(["prune"]).assert().success();
    t.cairn(["verify", "--read-data"]).assert().success();
    assert_trees_equal(&src, &restored(&t.second_host().restore(id(&last)), &src));
}
