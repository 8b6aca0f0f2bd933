//! The loopback S3 server of a test binary: one `moto_server` started on
//! first use on a free port, waited for, and killed by the kernel when the
//! test binary ends (see `spawn`). It panics, with what to install, in every
//! test that asks for it when it cannot be started: S3 tests never skip.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};
use std::{env, thread};

/// How long the server may take to answer after it was started (Python
/// imports boto and friends: a few seconds on a loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "the S3 tests need `moto_server` on PATH: install it with \
     `python3 -m pip install 'moto[server]'` (or run .ci/run, which installs its S3 \
     part under target/s3-server)";

/// The loopback S3 server shared by the tests of one binary.
pub struct S3Server {
    addr: SocketAddr,
    pid: u32,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// The server of this test binary, started on first use; panics (with what
/// to install) when it cannot be started, in every test that asks for it.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
    match SERVER.get_or_init(S3Server::start) {
        Ok(server) => server,
        Err(why) => panic!("cannot start the loopback S3 server: {why}"),
    }
}

impl S3Server {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Creates bucket `name` (moto checks no signature, so a plain request
    /// does).
    pub fn create_bucket(&self, name: &str) -> Result<(), String> {
        match raw_request(self.addr, "PUT", &format!("/{name}"))? {
            200 => Ok(()),
            status => Err(format!("creating bucket {name}: HTTP {status}")),
        }
    }

    /// Puts an empty object at `key` of bucket `name` as is, trailing
    /// slash and all: the "folder" an S3 console makes (object_store's
    /// paths cannot end in one).
    pub fn put_empty(&self, name: &str, key: &str) -> Result<(), String> {
        match raw_request(self.addr, "PUT", &format!("/{name}/{key}"))? {
            200 => Ok(()),
            status => Err(format!("putting {name}/{key}: HTTP {status}")),
        }
    }

    /// The last lines the server logged (one per request), to explain a
    /// failure.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Starts the server on a free port; a few attempts, as another process
    /// may take the port between our probe and the server's bind.
    fn start() -> Result<S3Server, String> {
        let program = match find_on_path("moto_server") {
            Some(program) => program,
            None => install_into_target()?,
        };
        let mut why = String::new();
        for _ in 0..3 {
            match Self::start_on(&program, free_port()) {
                Ok(server) => return Ok(server),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    fn start_on(program: &Path, port: u16) -> Result<S3Server, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let exited = Arc::new(Mutex::new(None));
        let pid = spawn(program, port, Arc::clone(&log), Arc::clone(&exited))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if answers_http(addr) {
                return Ok(S3Server { addr, pid, log });
            }
            let tail = || log.lock().unwrap().iter().cloned().collect::<Vec<_>>();
            if let Some(status) = *exited.lock().unwrap() {
                return Err(format!(
                    "{} exited ({status}) before answering on port {port}; {INSTALL_HINT}; \
                     its output:\n{}",
                    program.display(),
                    tail().join("\n")
                ));
            }
            if Instant::now() > deadline {
                kill(pid);
                return Err(format!(
                    "{} did not answer on port {port} within {START_DEADLINE:?}; its output:\n{}",
                    program.display(),
                    tail().join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts the server from a thread that lives as long as the server, under
/// `setpriv --pdeathsig KILL`: the kernel kills the server when the thread
/// that started it ends, and that thread ends only with the test binary (or
/// after the server exited). So no server outlives its tests, even after
/// `kill -9`, and no unsafe `pre_exec` is needed. Returns the server's pid.
fn spawn(
    program: &Path,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
    exited: Arc<Mutex<Option<ExitStatus>>>,
) -> Result<u32, String> {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("moto_server:{port}"))
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => return tx.send(Err(format!("cannot run setpriv: {e}"))).unwrap(),
            };
            tx.send(Ok(child.id())).unwrap();
            if let Some(stderr) = child.stderr.take() {
                keep_tail(stderr, &log);
            }
            let status = child.wait().unwrap();
            *exited.lock().unwrap() = Some(status);
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    rx.recv().unwrap()
}

/// Reads `from` to its end, keeping the last 50 lines in `log`.
fn keep_tail(from: impl Read, log: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let mut log = log.lock().unwrap();
        if log.len() == 50 {
            log.pop_front();
        }
        log.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
        line.clear();
    }
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// Whether something on `addr` answers `GET /` with an HTTP status line.
fn answers_http(addr: SocketAddr) -> bool {
    raw_request(addr, "GET", "/").is_ok()
}

/// One request without a body and without a signature (moto does not check
/// them); the status code.
fn raw_request(addr: SocketAddr, method: &str, target: &str) -> Result<u16, String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut status = String::new();
    BufReader::new(conn)
        .read_line(&mut status)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let code = status.strip_prefix("HTTP/1.1 ").unwrap_or_default();
    code.get(..3)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {target}: not an HTTP answer: {status:?}"))
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// The first executable file called `name` in `$PATH`.
/// Where the test command installs the server when it is not on PATH: a
/// virtualenv under `target/`, as `.ci/run` makes it, so that `cargo test`
/// works on a fresh machine with python3 (and PyPI) alone.
fn install_into_target() -> Result<PathBuf, String> {
    // The harness's own test points it elsewhere to see an install fail.
    let venv = match env::var_os("CAIRN_TEST_S3_SERVER_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s3-server"),
    };
    let program = venv.join("bin/moto_server");
    // One test binary installs; the others wait for it on the lock.
    let lock_path = venv.with_extension("lock");
    let _ = std::fs::create_dir_all(venv.parent().unwrap_or(Path::new(".")));
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if program.exists() {
        return Ok(program);
    }
    eprintln!(
        "installing moto_server (moto[s3], flask, flask-cors) into {}",
        venv.display()
    );
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd
            .status()
            .map_err(|e| format!("{cmd:?}: {e}; {INSTALL_HINT}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{cmd:?} failed; {INSTALL_HINT}"))
    };
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "moto[s3]==5.2.1",
        "flask",
        "flask-cors",
    ]))?;
    Ok(program)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
