//! The S3 harness itself, with real processes and real I/O: the loopback
//! server, buckets, the bucket helpers, and the fault proxy, driven through
//! `object_store` as cairn drives S3. The S3 tests of cairn trust all of it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use common::proxy::{Fault, FaultProxy, Outcome};
use common::s3::{self, S3Store, block_on};
use common::{StoreLocation, TestEnv, random_bytes};

fn put(client: &Arc<dyn ObjectStore>, key: &str, bytes: &[u8]) -> object_store::Result<()> {
    let payload = PutPayload::from(bytes.to_vec());
    block_on(client.put(&Path::from(key), payload)).map(|_| ())
}

fn get(client: &Arc<dyn ObjectStore>, key: &str) -> object_store::Result<Vec<u8>> {
    block_on(async { client.get(&Path::from(key)).await?.bytes().await }).map(|b| b.to_vec())
}

/// A client for `store`'s bucket that reaches the server through `proxy`.
fn via(proxy: &FaultProxy, store: &S3Store, retries: usize) -> Arc<dyn ObjectStore> {
    s3::client(store.bucket(), &proxy.endpoint(), retries)
}

#[test]
fn a_fresh_bucket_is_empty_and_reachable() {
    let store = S3Store::new();
    assert_eq!(store.bucket_keys(), vec![]);
    assert_eq!(store.get("config.json"), None);
    assert!(
        store.url().starts_with("s3://cairn-test-"),
        "{}",
        store.url()
    );
    assert!(store.url().ends_with("/store"), "{}", store.url());
}

#[test]
fn two_buckets_are_isolated() {
    let (a, b) = (S3Store::new(), S3Store::new());
    assert_ne!(a.bucket(), b.bucket());
    a.put("config.json", b"a");
    assert_eq!(a.get("config.json").as_deref(), Some(&b"a"[..]));
    assert_eq!(b.get("config.json"), None);
    assert_eq!(b.bucket_keys(), vec![]);
}

#[test]
fn helpers_put_get_list_count_flip_and_delete_under_the_prefix() {
    let store = S3Store::new();
    let pack = random_bytes(1, 100_000);
    store.put("packs/ab/ab01", &pack);
    store.put("packs/cd/cd02", b"x");
    store.put("snapshots/s1", b"record");
    assert_eq!(
        store.keys("packs"),
        vec![
            ("packs/ab/ab01".into(), 100_000),
            ("packs/cd/cd02".into(), 1)
        ]
    );
    assert_eq!(store.count("packs"), 2);
    assert_eq!(store.count(""), 3);
    assert_eq!(store.size("packs"), 100_001);
    assert_eq!(store.get("packs/ab/ab01"), Some(pack.clone()));
    let full: Vec<String> = store.bucket_keys().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        full,
        [
            "store/packs/ab/ab01",
            "store/packs/cd/cd02",
            "store/snapshots/s1"
        ]
    );

    store.flip_byte("packs/ab/ab01", 7);
    let flipped = store.get("packs/ab/ab01").unwrap();
    let differ: Vec<usize> = (0..pack.len()).filter(|&i| flipped[i] != pack[i]).collect();
    assert_eq!(differ, [7]);
    assert_eq!(flipped[7], !pack[7]);

    store.delete("packs/cd/cd02");
    assert_eq!(store.get("packs/cd/cd02"), None);
    assert_eq!(store.count("packs"), 1);
    assert_eq!(store.sibling("other").count(""), 0);
}

#[test]
fn create_only_put_refuses_to_replace_an_object() {
    let store = S3Store::new();
    let client = store.client();
    let path = Path::from(store.full_key("snapshots/s1"));
    let create = || PutOptions::from(PutMode::Create);
    block_on(client.put_opts(&path, PutPayload::from_static(b"first"), create())).unwrap();
    let second = block_on(client.put_opts(&path, PutPayload::from_static(b"second"), create()));
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "{second:?}"
    );
    assert_eq!(store.get("snapshots/s1").as_deref(), Some(&b"first"[..]));
}

#[test]
fn proxy_passes_traffic_through_and_counts_requests_by_method() {
    let store = S3Store::new();
    let proxy = FaultProxy::to_s3();
    let client = via(&proxy, &store, 0);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        put(&client, key, &random_bytes(i as u64, 50_000)).unwrap();
    }
    assert_eq!(get(&client, "b").unwrap(), random_bytes(1, 50_000));
    assert_eq!(
        block_on(client.head(&Path::from("c"))).unwrap().size,
        50_000
    );
    let listed = block_on(futures::TryStreamExt::try_collect::<Vec<_>>(
        client.list(None),
    ));
    assert_eq!(listed.unwrap().len(), 3);
    block_on(client.delete(&Path::from("a"))).unwrap();

    assert_eq!(proxy.count("PUT"), 3);
    assert_eq!(proxy.count("GET"), 2, "{:#?}", proxy.seen());
    assert_eq!(proxy.count("HEAD"), 1);
    assert_eq!(proxy.count("POST"), 1, "a delete is a bulk POST ?delete");
    assert_eq!(proxy.total(), 7);
    assert_eq!(proxy.count_outcome(Outcome::Forwarded), 7);
    let bucket_keys: Vec<String> = store.bucket_keys().into_iter().map(|(k, _)| k).collect();
    assert_eq!(bucket_keys, ["b", "c"]);

    proxy.reset_seen();
    assert_eq!(proxy.total(), 0);
}

#[test]
fn slow_down_fails_a_request_with_503_when_the_client_does_not_retry() {
    let store = S3Store::new();
    let proxy = FaultProxy::to_s3();
    let client = via(&proxy, &store, 0);
    proxy.slow_down(1);
    let err = put(&client, "k", &random_bytes(2, 10_000)).unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(proxy.count_outcome(Outcome::SlowDown), 1);
    assert_eq!(proxy.fault(), Fault::None, "one 503, then pass-through");
    assert_eq!(store.bucket_keys(), vec![], "a refused put stores nothing");

    put(&client, "k", b"now").unwrap();
    assert_eq!(store.sibling("").get("k").as_deref(), Some(&b"now"[..]));
}

#[test]
fn slow_down_is_overcome_by_a_client_that_retries() {
    let store = S3Store::new();
    let proxy = FaultProxy::to_s3();
    let client = via(&proxy, &store, 3);
    proxy.slow_down(2);
    let bytes = random_bytes(3, 200_000);
    put(&client, "k", &bytes).unwrap();
    assert_eq!(proxy.count("PUT"), 3, "{:#?}", proxy.seen());
    assert_eq!(proxy.count_outcome(Outcome::SlowDown), 2);
    assert_eq!(proxy.count_outcome(Outcome::Forwarded), 1);
    assert_eq!(store.sibling("").get("k"), Some(bytes));
}

#[test]
fn drop_mid_body_breaks_an_upload_and_stores_nothing() {
    let store = S3Store::new();
    let root = store.sibling("");
    let proxy = FaultProxy::to_s3();
    let client = via(&proxy, &store, 0);
    proxy.drop_mid_body(64 * 1024, 1);

    put(&client, "small", &random_bytes(4, 1000)).unwrap();
    assert!(matches!(
        proxy.fault(),
        Fault::DropMidBody { remaining: 1, .. }
    ));

    let big = random_bytes(5, 1 << 20);
    let err = put(&client, "big", &big).unwrap_err();
    assert_eq!(proxy.count_outcome(Outcome::Dropped), 1, "{err}");
    assert_eq!(root.get("big"), None, "a cut upload stores nothing");
    assert_eq!(proxy.fault(), Fault::None);

    put(&client, "big", &big).unwrap();
    assert_eq!(root.get("big"), Some(big));
    assert_eq!(proxy.count("PUT"), 3);
}

#[test]
fn faults_aimed_at_a_method_spare_other_requests_and_the_first_ones() {
    let store = S3Store::new();
    let proxy = FaultProxy::to_s3();
    let client = via(&proxy, &store, 0);
    put(&client, "first", b"1").unwrap();
    proxy.aim("PUT", 1);
    proxy.slow_down(1);
    assert_eq!(get(&client, "first").unwrap(), b"1", "a GET is spared");
    put(&client, "second", b"2").expect("the first PUT is spared");
    let err = put(&client, "third", b"3").unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    put(&client, "third", b"3").expect("one 503 only");
    let outcomes: Vec<_> = proxy
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.outcome))
        .collect();
    let forwarded = |m: &str| (m.to_owned(), Outcome::Forwarded);
    assert_eq!(
        outcomes,
        [
            forwarded("PUT"),
            forwarded("GET"),
            forwarded("PUT"),
            ("PUT".to_owned(), Outcome::SlowDown),
            forwarded("PUT"),
        ]
    );
}

#[test]
fn multipart_uploads_pass_through_and_a_cut_part_leaves_no_object() {
    let store = S3Store::new();
    let root = store.sibling("");
    let proxy = FaultProxy::to_s3();
    let client = via(&proxy, &store, 0);
    let parts = [random_bytes(6, 5 << 20), random_bytes(7, 1 << 20)];
    let upload = |key: &str| {
        let path = Path::from(key);
        block_on(async {
            let mut upload = client.put_multipart(&path).await?;
            for part in &parts {
                if let Err(e) = upload.put_part(PutPayload::from(part.clone())).await {
                    upload.abort().await?;
                    return Err(e);
                }
            }
            upload.complete().await
        })
    };
    upload("whole").unwrap();
    assert_eq!(root.get("whole"), Some(parts.concat()));
    assert_eq!(
        proxy.count("POST"),
        2,
        "create and complete: {:#?}",
        proxy.seen()
    );
    assert_eq!(proxy.count("PUT"), 2, "one per part");

    proxy.drop_mid_body(1 << 20, 1);
    upload("cut").unwrap_err();
    assert_eq!(proxy.count_outcome(Outcome::Dropped), 1);
    assert_eq!(root.get("cut"), None);
    assert_eq!(proxy.count("DELETE"), 1, "the upload was aborted");
}

#[test]
fn delay_makes_a_request_outlast_a_short_client_timeout() {
    let store = S3Store::new();
    store.sibling("").put("k", b"v");
    let proxy = FaultProxy::to_s3();
    let impatient = s3::client_with_timeout(
        store.bucket(),
        &proxy.endpoint(),
        0,
        Duration::from_millis(200),
    );
    proxy.delay(Duration::from_secs(1));
    let err = get(&impatient, "k").unwrap_err();
    assert!(causes(&err).contains("timed out"), "{}", causes(&err));

    let patient = via(&proxy, &store, 0);
    assert_eq!(get(&patient, "k").unwrap(), b"v");
    assert_eq!(proxy.count("GET"), 2);
}

#[test]
fn an_s3_test_env_gives_cairn_the_store_url_cache_and_endpoint() {
    let mut t = TestEnv::new_s3();
    let cmd = t.command(["snapshots"]);
    let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
    let url = t.s3().url();
    let cache = t.root.join("cache");
    assert_eq!(
        args,
        [
            "--store",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
            "snapshots"
        ]
    );
    assert_eq!(env_of(&cmd, "AWS_ENDPOINT_URL"), s3::server().endpoint());
    assert_eq!(env_of(&cmd, "AWS_ALLOW_HTTP"), "true");
    assert_eq!(env_of(&cmd, "AWS_REGION"), s3::REGION);

    let proxy = FaultProxy::to_s3();
    t.through(&proxy);
    assert_eq!(
        env_of(&t.command(["x"]), "AWS_ENDPOINT_URL"),
        proxy.endpoint()
    );
    let other = t.second_host();
    assert_eq!(other.s3().url(), url);
    assert_ne!(other.cache, t.cache);
    assert!(matches!(other.location, StoreLocation::S3 { .. }));

    let local = TestEnv::new();
    let args: Vec<_> = local
        .command(["x"])
        .get_args()
        .map(|a| a.to_owned())
        .collect();
    assert_eq!(
        args,
        ["--store".as_ref(), local.store.as_os_str(), "x".as_ref()]
    );
}

/// An error with all its causes, for what a `Display` alone leaves out.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn env_of(cmd: &Command, name: &str) -> String {
    cmd.get_envs()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v)
        .unwrap_or_else(|| panic!("{name} is not set"))
        .to_str()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------
// The server's life, seen from outside a test binary

/// Run by the tests below in a child process: starts the server, prints its
/// pid, and waits to be killed.
#[test]
#[ignore = "a helper process for the tests below"]
fn helper_start_the_server_and_wait() {
    println!("server pid {}", s3::server().pid());
    std::thread::sleep(Duration::from_secs(600));
}

fn helper() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "helper_start_the_server_and_wait",
        "--nocapture",
    ]);
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn the_server_dies_with_its_test_binary_even_on_kill_9() {
    let mut child = helper().stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid: u32 = lines
        .find_map(|l| l.unwrap().strip_prefix("server pid ")?.parse().ok())
        .expect("the helper prints the server's pid");
    assert!(alive(pid), "server {pid} runs while its test binary does");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "server {pid} outlived its test binary");
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn a_missing_server_that_cannot_be_installed_fails_loudly_with_what_to_install() {
    let venv = tempfile::tempdir().unwrap();
    let out = helper()
        .env("PATH", "/nonexistent")
        .env("CAIRN_TEST_S3_SERVER_VENV", venv.path().join("s3-server"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("pip install 'moto[server]'"), "{all}");
}
