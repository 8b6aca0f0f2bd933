//! A fault-injecting HTTP/1.1 proxy for the S3 tests: it listens on
//! 127.0.0.1, forwards each connection to the loopback S3 server, and can be
//! switched while a test runs to answer `503 Slow Down`, to cut a connection
//! in the middle of a request body, to lose the answer to a request the
//! server carried out, or to hold each request. It records every
//! request it saw, so that tests can count what a command asked for.
//!
//! Faults are real: a 503 is a real HTTP answer on the client's socket, a
//! dropped upload is a real closed connection, not a mocked client.
//!
//! It reads requests (to find where each ends), never responses: those are
//! copied byte for byte, and when the server closes a connection (moto does
//! after each answer) the proxy closes the client's side too. A connection
//! that carries several requests (keep-alive) has each of them decided alone.

mod answers;
mod http;

use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use answers::{
    CONFLICT, Refusal, SLOW_DOWN, cut_answer, list_in_a_loop, lose_answer, refuse, reset_on_close,
};
use http::{Body, Head, copy_chunked, copy_exact, read_head};

/// What the proxy does to the requests it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Answer the next `remaining` requests with `503 Slow Down` (after
    /// reading their bodies) and close their connections; then forward again.
    SlowDown { remaining: usize },
    /// Answer the next `remaining` requests with `409 Conflict`
    /// (`ConditionalRequestConflict`: S3's answer to a conditional write
    /// while another write of the key is in flight), as `SlowDown` does.
    Conflict { remaining: usize },
    /// For the next `remaining` requests whose body is longer than
    /// `after_bytes` (by `Content-Length`), forward the head and the first
    /// `after_bytes` bytes of the body, then close both connections; other
    /// requests pass. Then forward again.
    DropMidBody { after_bytes: u64, remaining: usize },
    /// Forward the next `remaining` requests whole and let the server
    /// carry them out, then reset the client's connection instead of
    /// passing the answer on (a network cut after the request arrived).
    LoseAnswer { remaining: usize },
    /// Hold each request this long before forwarding it.
    Delay(Duration),
    /// For the next `remaining` requests, pass on only the first
    /// `after_bytes` bytes of the server's answer, then reset the
    /// connection: an answer cut off in its body.
    CutAnswer {
        after_bytes: usize,
        remaining: usize,
    },
    /// Answer every listing (`list-type=2`) with an empty page that says
    /// more follows, under the same continuation token each time.
    LoopingList,
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent on to the server.
    Forwarded,
    /// Answered `503 Slow Down` by the proxy.
    SlowDown,
    /// Answered `409 Conflict` by the proxy.
    Conflict,
    /// A listing answered with a page that loops.
    Looped,
    /// Its answer cut off after some bytes.
    AnswerCut,
    /// Cut in the middle of its body.
    Dropped,
    /// Carried out by the server, its answer lost.
    AnswerLost,
}

/// One request the proxy saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target: `/bucket/key?query`.
    pub target: String,
    /// What the proxy did with it.
    pub outcome: Outcome,
}

/// A running proxy; it stops accepting connections when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    closed: AtomicBool,
}

struct State {
    fault: Fault,
    aim: Aim,
    seen: Vec<Seen>,
}

/// Which requests a fault hits: those with `method` (any when `None`)
/// whose target contains `target` (any when `None`), after the first
/// `skip` of them have passed.
#[derive(Clone, Debug, Default)]
struct Aim {
    method: Option<String>,
    target: Option<String>,
    skip: usize,
}

impl Aim {
    /// Whether the fault hits this request; a skipped request uses up one skip.
    fn hits(&mut self, head: &Head) -> bool {
        if self.method.as_ref().is_some_and(|m| *m != head.method) {
            return false;
        }
        if self
            .target
            .as_ref()
            .is_some_and(|t| !head.target.contains(t))
        {
            return false;
        }
        match self.skip {
            0 => true,
            _ => {
                self.skip -= 1;
                false
            }
        }
    }
}

impl FaultProxy {
    /// A proxy in front of this test binary's loopback S3 server.
    pub fn to_s3() -> Self {
        Self::to(super::s3::server().addr())
    }

    /// A proxy in front of `upstream`, forwarding everything.
    pub fn to(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State {
                fault: Fault::None,
                aim: Aim::default(),
                seen: Vec::new(),
            }),
            closed: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("proxy:{}", addr.port()))
            .spawn(move || accept(listener, accepting))
            .unwrap();
        Self { addr, shared }
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches to `fault` for the requests that arrive from now on.
    pub fn set(&self, fault: Fault) {
        let fault = match fault {
            Fault::SlowDown { remaining: 0 }
            | Fault::Conflict { remaining: 0 }
            | Fault::DropMidBody { remaining: 0, .. }
            | Fault::LoseAnswer { remaining: 0 } => Fault::None,
            fault => fault,
        };
        self.shared.state.lock().unwrap().fault = fault;
    }

    /// The fault in force: a counted fault turns into `Fault::None` once
    /// it has been applied as often as asked.
    pub fn fault(&self) -> Fault {
        self.shared.state.lock().unwrap().fault
    }

    /// Aims the faults set from now on at requests with `method` only,
    /// sparing the first `skip` of them: `aim("PUT", 2)` then `slow_down(1)`
    /// answers 503 to the third PUT. Other requests pass and use up nothing.
    pub fn aim(&self, method: &str, skip: usize) {
        self.shared.state.lock().unwrap().aim = Aim {
            method: Some(method.to_owned()),
            target: None,
            skip,
        };
    }

    /// Aims the faults at requests with `method` whose target contains
    /// `target` (`/snapshots/`, `list-type=2`).
    pub fn aim_at(&self, method: &str, target: &str) {
        self.shared.state.lock().unwrap().aim = Aim {
            method: Some(method.to_owned()),
            target: Some(target.to_owned()),
            skip: 0,
        };
    }

    /// Aims the faults at every request again (the default).
    pub fn aim_at_all(&self) {
        self.shared.state.lock().unwrap().aim = Aim::default();
    }

    /// Forwards everything from now on.
    pub fn pass_through(&self) {
        self.set(Fault::None);
    }

    /// Answers the next `n` requests with `503 Slow Down`.
    pub fn slow_down(&self, n: usize) {
        self.set(Fault::SlowDown { remaining: n });
    }

    /// Cuts the next `n` uploads longer than `after_bytes` after that many
    /// bytes of their bodies.
    pub fn drop_mid_body(&self, after_bytes: u64, n: usize) {
        self.set(Fault::DropMidBody {
            after_bytes,
            remaining: n,
        });
    }

    /// Answers the next `n` requests the aim hits with `409 Conflict`.
    pub fn conflict(&self, n: usize) {
        self.set(Fault::Conflict { remaining: n });
    }

    /// Lets the server carry out the next `n` requests the aim hits, and
    /// resets their connections instead of passing the answers on.
    pub fn lose_answers(&self, n: usize) {
        self.set(Fault::LoseAnswer { remaining: n });
    }

    /// Passes on only the first `after_bytes` bytes of the answers to the
    /// next `n` requests the aim hits, then resets their connections.
    pub fn cut_answers(&self, after_bytes: usize, n: usize) {
        self.set(Fault::CutAnswer {
            after_bytes,
            remaining: n,
        });
    }

    /// Answers every listing with a page that loops.
    pub fn loop_listings(&self) {
        self.set(Fault::LoopingList);
    }

    /// Holds each request for `delay` before forwarding it.
    pub fn delay(&self, delay: Duration) {
        self.set(Fault::Delay(delay));
    }

    /// Every request seen since the start or the last `reset_seen`, in the
    /// order their heads arrived.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// How many requests with `method` were seen (whatever their outcome).
    pub fn count(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }

    /// How many requests had `outcome`.
    pub fn count_outcome(&self, outcome: Outcome) -> usize {
        self.seen().iter().filter(|s| s.outcome == outcome).count()
    }

    /// How many requests were seen.
    pub fn total(&self) -> usize {
        self.shared.state.lock().unwrap().seen.len()
    }

    /// Forgets the requests seen so far (to count one command's requests).
    pub fn reset_seen(&self) {
        self.shared.state.lock().unwrap().seen.clear();
    }
}

impl Drop for FaultProxy {
    /// Stops the accepting thread: it checks the flag after each accept, so
    /// one last connection wakes it up. Open connections finish on their own.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let shared = Arc::clone(&shared);
        thread::spawn(move || serve(conn, &shared));
    }
}

// ---------------------------------------------------------------------------
// One connection

/// What to do with one request, decided when its head arrived.
enum Action {
    Forward { delay: Option<Duration> },
    Refuse(Refusal),
    ListInALoop,
    CutAnswer { after_bytes: usize },
    Cut { after_bytes: u64 },
    LoseAnswer,
}

impl Shared {
    /// Records the request and decides its fate, using up one count of a
    /// counted fault that hits it.
    fn decide(&self, head: &Head) -> Action {
        let mut state = self.state.lock().unwrap();
        let fault = state.fault;
        let hit = fault.applies_to(head) && state.aim.hits(head);
        let (action, outcome) = match fault {
            _ if !hit => (Action::Forward { delay: None }, Outcome::Forwarded),
            Fault::None => (Action::Forward { delay: None }, Outcome::Forwarded),
            Fault::Delay(d) => (Action::Forward { delay: Some(d) }, Outcome::Forwarded),
            Fault::SlowDown { .. } => (Action::Refuse(SLOW_DOWN), Outcome::SlowDown),
            Fault::Conflict { .. } => (Action::Refuse(CONFLICT), Outcome::Conflict),
            Fault::DropMidBody { after_bytes, .. } => {
                (Action::Cut { after_bytes }, Outcome::Dropped)
            }
            Fault::LoseAnswer { .. } => (Action::LoseAnswer, Outcome::AnswerLost),
            Fault::LoopingList => (Action::ListInALoop, Outcome::Looped),
            Fault::CutAnswer { after_bytes, .. } => {
                (Action::CutAnswer { after_bytes }, Outcome::AnswerCut)
            }
        };
        if hit {
            state.fault = fault.used_once();
        }
        state.seen.push(Seen {
            method: head.method.clone(),
            target: head.target.clone(),
            outcome,
        });
        action
    }
}

impl Fault {
    /// Whether the fault can hit this request at all (a cut needs a body
    /// longer than where it cuts).
    fn applies_to(self, head: &Head) -> bool {
        match self {
            Fault::None => false,
            Fault::DropMidBody { after_bytes, .. } => head.body.longer_than(after_bytes),
            Fault::LoopingList => head.method == "GET" && head.target.contains("list-type=2"),
            Fault::SlowDown { .. }
            | Fault::Conflict { .. }
            | Fault::LoseAnswer { .. }
            | Fault::CutAnswer { .. }
            | Fault::Delay(_) => true,
        }
    }

    /// The fault after it hit one request: a counted fault counts down to
    /// `Fault::None`.
    fn used_once(self) -> Fault {
        match self {
            Fault::SlowDown { remaining } => {
                counted_down(remaining, |remaining| Fault::SlowDown { remaining })
            }
            Fault::DropMidBody {
                after_bytes,
                remaining,
            } => counted_down(remaining, |remaining| Fault::DropMidBody {
                after_bytes,
                remaining,
            }),
            Fault::Conflict { remaining } => {
                counted_down(remaining, |remaining| Fault::Conflict { remaining })
            }
            Fault::LoseAnswer { remaining } => {
                counted_down(remaining, |remaining| Fault::LoseAnswer { remaining })
            }
            Fault::CutAnswer {
                after_bytes,
                remaining,
            } => counted_down(remaining, |remaining| Fault::CutAnswer {
                after_bytes,
                remaining,
            }),
            fault => fault,
        }
    }
}

/// The fault after one more use: `Fault::None` when none is left.
fn counted_down(remaining: usize, fault: impl Fn(usize) -> Fault) -> Fault {
    match remaining.saturating_sub(1) {
        0 => Fault::None,
        left => fault(left),
    }
}

/// Serves one client connection request by request until the client closes
/// it, a fault ends it, or the server goes away.
fn serve(client: TcpStream, shared: &Shared) {
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let mut requests = BufReader::new(reader);
    let mut upstream: Option<TcpStream> = None;
    while let Ok(Some(head)) = read_head(&mut requests) {
        let done = match shared.decide(&head) {
            Action::Forward { delay } => {
                if let Some(delay) = delay {
                    thread::sleep(delay);
                }
                forward(&head, &mut requests, &client, &mut upstream, shared, None).is_err()
            }
            Action::Refuse(refusal) => {
                let _ = refuse(&head, &mut requests, &client, refusal);
                true
            }
            Action::ListInALoop => {
                let _ = list_in_a_loop(&head, &mut requests, &client);
                true
            }
            Action::CutAnswer { after_bytes } => {
                let _ = cut_answer(&head, &mut requests, &client, shared, after_bytes);
                reset_on_close(&client);
                return;
            }
            Action::LoseAnswer => {
                let _ = lose_answer(&head, &mut requests, shared);
                reset_on_close(&client);
                // The thread copying an earlier answer holds the client's
                // socket too: ending its upstream connection ends it, so
                // that the client's socket closes (with the reset) here.
                if let Some(up) = upstream.take() {
                    let _ = up.shutdown(Shutdown::Both);
                }
                return;
            }
            Action::Cut { after_bytes } => {
                let _ = forward(
                    &head,
                    &mut requests,
                    &client,
                    &mut upstream,
                    shared,
                    Some(after_bytes),
                );
                true
            }
        };
        if done {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    if let Some(up) = upstream {
        let _ = up.shutdown(Shutdown::Both);
    }
}

/// Sends the request on to the server (connecting on first use), the body
/// only up to `cut` bytes when given.
fn forward(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    client: &TcpStream,
    upstream: &mut Option<TcpStream>,
    shared: &Shared,
    cut: Option<u64>,
) -> io::Result<()> {
    if upstream.is_none() {
        *upstream = Some(connect_upstream(shared.upstream, client)?);
    }
    let up = upstream.as_mut().expect("connected just above");
    up.write_all(&head.bytes)?;
    match (head.body, cut) {
        (_, Some(after_bytes)) => copy_exact(requests, up, after_bytes),
        (Body::Length(n), None) => copy_exact(requests, up, n),
        (Body::Chunked, None) => copy_chunked(requests, up),
    }
}

/// Connects to the server and copies everything it answers back to the
/// client, closing the client's side when the server closes its own.
fn connect_upstream(addr: SocketAddr, client: &TcpStream) -> io::Result<TcpStream> {
    let up = TcpStream::connect(addr)?;
    let (mut answers, mut to_client) = (up.try_clone()?, client.try_clone()?);
    thread::spawn(move || {
        let _ = io::copy(&mut answers, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    Ok(up)
}
