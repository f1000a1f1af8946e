//! One client connection: read requests, run them concurrently, write responses in
//! request order.
//!
//! Kafka clients pipeline requests, and the protocol matches responses to requests by
//! order (the correlation id is only a check). So the connection is two halves joined by
//! a queue: the reader decodes each request and spawns its handler, queueing the task's
//! handle; the writer awaits the handles front to back and writes each response.
//!
//! Handlers of one connection run one after another, in request order, as Kafka runs
//! them: a producer pipelining several Produce requests for one partition relies on
//! them being appended in the order sent. Reading and decoding the next requests go
//! on meanwhile; only the handlers are chained.
//!
//! Backpressure has two levels; a peer that pushes too much simply stops being read
//! from (and TCP slows it down):
//! - per connection, at most `connection.max.in.flight.requests` requests are read but
//!   unanswered (a semaphore permit, taken before the next frame is read, travels with
//!   each request until its response is written);
//! - server wide, the request memory budget (`crate::budget`), taken after a body has
//!   arrived and before it is decoded.
//!
//! While a body of more than 2 MiB arrives, its buffer grows only with the bytes
//! received (`crate::frame`; smaller bodies get their whole buffer at once),
//! and its size is capped first by `socket.request.max.bytes` and, for every API except
//! Produce, by `non.produce.request.max.bytes`.
//!
//! Two timers bound how long a connection can sit on its slot without doing work:
//! between requests, `connections.max.idle.ms` closes a connection that has nothing in
//! flight and has been quiet that long (`crate::activity`); once a request's first byte
//! has arrived, the whole request must follow within `socket.request.read.timeout.ms`
//! (`crate::frame`), so a client trickling a byte a second is cut off too.
//!
//! Any protocol violation (bad size, unknown API key, undecodable header or body, an
//! unsupported API or version, a request too slow to arrive) stops the reader:
//! responses to the requests before it are still written, then the connection closes.
//! Nothing here panics on client input, and no lock is held across an await.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

use crate::activity::Activity;
use crate::budget::{BudgetShare, RequestBudget};
use crate::dispatch::{self, Route};
use crate::error::{Result, ServerError};
use crate::frame::FrameReader;
use crate::request;
use crate::response_frame::ResponseFrame;
use crate::server::{Shared, TaskToken};
use crate::warn_limit::{WarnLimiter, limited_warn};

/// Protocol violations are the client's doing and can be repeated at will: their
/// warnings are capped per ten seconds (with a count of the rest).
static CLIENT_ERROR_WARNINGS: WarnLimiter = WarnLimiter::new(20, Duration::from_secs(10));
/// Read timeouts have their own cap, so that a flood of garbage cannot hide a
/// slowloris from the log (or the other way round).
static TIMEOUT_WARNINGS: WarnLimiter = WarnLimiter::new(20, Duration::from_secs(10));

/// A request between being read and having its response written.
struct InFlight {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: Pending,
    /// Held until the response is written: the connection's in-flight slot and the
    /// request's share of the memory budget.
    _slot: OwnedSemaphorePermit,
    _budget: BudgetShare,
}

enum Pending {
    /// The handler task producing the response frame.
    Task(JoinHandle<Result<ResponseFrame>>),
    /// A response known without a handler.
    Ready(Bytes),
}

/// Serves one accepted connection until the peer leaves, a protocol error, or shutdown.
/// `token` keeps the server's shutdown waiting for this connection; clones of it do the
/// same for the handler tasks it spawns.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    token: TaskToken,
) {
    debug!(%peer, "connection opened");
    let (read_half, write_half) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let activity = Activity::new();
    let write_timeout = shared.limits.idle_timeout;
    let reader = read_requests(read_half, peer, shared, &token, &activity, tx, shutdown);
    let writer = write_responses(write_half, peer, &activity, write_timeout, rx);
    tokio::pin!(reader, writer);
    let mut reader_done = false;
    let written = loop {
        tokio::select! {
            // When the reader stops it drops the queue's sender, so the writer finishes
            // the queued responses and then ends too.
            () = &mut reader, if !reader_done => reader_done = true,
            // When the writer stops (done, or the socket failed), nothing more can be
            // answered: dropping the reader stops reading.
            written = &mut writer => break written,
        }
    };
    debug!(%peer, responses = written, "connection closed");
}

/// The reader half: frames in, queued requests out. Returns when reading must stop.
async fn read_requests(
    read_half: OwnedReadHalf,
    peer: SocketAddr,
    shared: Arc<Shared>,
    token: &TaskToken,
    activity: &Activity,
    queue: mpsc::UnboundedSender<InFlight>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = shared.limits;
    let mut frames = FrameReader::new(read_half, limits.max_frame, limits.read_timeout);
    let slots = Arc::new(Semaphore::new(shared.limits.max_in_flight));
    // Completion of the last handler spawned: the next one starts after it.
    let mut previous: Option<oneshot::Receiver<()>> = None;
    loop {
        // Each wait below also watches for shutdown: on shutdown the reader stops taking
        // new requests (a partly read frame is dropped with the connection) while the
        // writer still answers those already taken.
        let stop = async {
            // An Err means the server is gone, which is also a reason to stop.
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);

        let slot = tokio::select! {
            biased;
            () = &mut stop => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return, // never closed
            },
        };
        // Between requests: wait for the next one's first byte, or close the connection
        // once it has been idle for `connections.max.idle.ms`. `wait_for_frame` is
        // cancel safe, so losing this race loses no bytes.
        let started = tokio::select! {
            biased;
            () = &mut stop => return,
            started = frames.wait_for_frame() => started,
            () = activity.idle_for(limits.idle_timeout) => {
                info!(
                    %peer,
                    idle_ms = limits.idle_timeout.as_millis() as u64,
                    "closing idle connection (connections.max.idle.ms)"
                );
                return;
            }
        };
        match started {
            Ok(true) => {}
            Ok(false) => return, // peer closed between requests
            Err(e) => return client_error(peer, &e),
        }
        // From here the frame reader's read deadline bounds the wait.
        let head = tokio::select! {
            biased;
            () = &mut stop => return,
            head = frames.read_head() => head,
        };
        let head = match head {
            Ok(Some(head)) => head,
            Ok(None) => return, // peer closed between requests
            Err(e) => return client_error(peer, &e),
        };
        let Ok(api) = ApiKey::try_from(head.api_key()) else {
            // Kafka closes the connection too: without a known API the rest of the
            // frame cannot even be parsed.
            return client_error(peer, &ServerError::UnknownApiKey(head.api_key()));
        };
        if api != ApiKey::Produce && head.size > shared.limits.non_produce_max {
            return client_error(
                peer,
                &ServerError::RequestTooLarge {
                    api,
                    size: head.size,
                    max: shared.limits.non_produce_max,
                },
            );
        }
        let frame = tokio::select! {
            biased;
            () = &mut stop => return,
            frame = frames.read_body(&head) => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return client_error(peer, &e),
        };
        // Charged only now that the bytes are here: a peer that announces a large frame
        // and stalls holds no budget (and only the buffer its bytes filled), so a few
        // slow connections cannot starve everyone else.
        let budget = tokio::select! {
            biased;
            () = &mut stop => return,
            share = shared.budget.acquire(RequestBudget::cost(api, head.size)) => share,
        };
        let (header, body) = match request::decode_header(api, head.api_version(), frame) {
            Ok(decoded) => decoded,
            Err(e) => return client_error(peer, &e),
        };
        let (version, correlation_id) = (header.request_api_version, header.correlation_id);
        let response = match dispatch::route(api, &header, body) {
            Ok(Route::Respond(frame)) => Pending::Ready(frame),
            Ok(Route::Handle { handler, request }) => {
                let broker = shared.broker.clone();
                let token = token.clone();
                let after = previous.take();
                let (done, next) = oneshot::channel::<()>();
                previous = Some(next);
                Pending::Task(tokio::spawn(async move {
                    // The handler finishes even if the connection goes away (a produce
                    // half-applied because its client left would be worse); the token
                    // makes shutdown wait for it.
                    let _token = token;
                    if let Some(after) = after {
                        // Err: the previous task is gone (panicked); still go on.
                        let _ = after.await;
                    }
                    let result =
                        request::with_peer(peer, dispatch::run(handler, broker, header, request))
                            .await;
                    let _ = done.send(());
                    result
                }))
            }
            Err(e) => {
                limited_warn!(
                    CLIENT_ERROR_WARNINGS,
                    %peer,
                    api = ?api,
                    version,
                    correlation_id,
                    error = %e,
                    "closing connection"
                );
                return;
            }
        };
        let in_flight = InFlight {
            api,
            version,
            correlation_id,
            response,
            _slot: slot,
            _budget: budget,
        };
        activity.request_read();
        if queue.send(in_flight).is_err() {
            return; // the writer stopped
        }
    }
}

/// Logs why reading stopped; the caller then closes the connection. Protocol
/// violations are warnings; socket errors (a client killed mid-request) are routine.
fn client_error(peer: SocketAddr, e: &ServerError) {
    match e {
        ServerError::Io(io) => debug!(%peer, error = %io, "read failed; closing connection"),
        ServerError::RequestTimeout { .. } => {
            limited_warn!(TIMEOUT_WARNINGS, %peer, error = %e, "closing connection")
        }
        _ => limited_warn!(CLIENT_ERROR_WARNINGS, %peer, error = %e, "closing connection"),
    }
}

/// Marks a request answered when dropped, whichever way the writer moves on from it.
struct Done<'a>(&'a Activity);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// The writer half: awaits queued requests in order and writes their responses.
/// Returns how many responses were written.
async fn write_responses(
    mut write_half: OwnedWriteHalf,
    peer: SocketAddr,
    activity: &Activity,
    write_timeout: Duration,
    mut queue: mpsc::UnboundedReceiver<InFlight>,
) -> u64 {
    let mut written = 0;
    while let Some(in_flight) = queue.recv().await {
        let _done = Done(activity);
        let frame = match in_flight.response {
            Pending::Ready(frame) => Ok(ResponseFrame::from(frame)),
            Pending::Task(task) => match task.await {
                Ok(result) => result,
                Err(join) => Err(ServerError::HandlerFailed {
                    api: in_flight.api,
                    reason: join.to_string(),
                }),
            },
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // A handler failure is the broker's problem, not the client's; without
                // a way to express it in this API's response, closing is what is left.
                error!(
                    %peer,
                    api = ?in_flight.api,
                    version = in_flight.version,
                    correlation_id = in_flight.correlation_id,
                    error = %e,
                    "request failed; closing connection"
                );
                break;
            }
        };
        if frame.is_empty() {
            continue; // acks=0: nothing to send
        }
        // A client that stops reading its responses would otherwise hold the
        // connection (and its queued responses) forever. Kafka closes a connection
        // with no I/O for `connections.max.idle.ms`; here a response that cannot be
        // written within that time closes it (a 55 MiB response at 100 kB/s still fits
        // in the default 10 minutes).
        match tokio::time::timeout(write_timeout, frame.write_to(&mut write_half)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "write failed");
                break;
            }
            Err(_) => {
                limited_warn!(
                    TIMEOUT_WARNINGS,
                    %peer,
                    timeout_ms = write_timeout.as_millis() as u64,
                    "closing connection: client not reading its responses (connections.max.idle.ms)"
                );
                break;
            }
        }
        written += 1;
    }
    // Best effort: tell the peer we are done; it may already be gone.
    let _ = write_half.shutdown().await;
    written
}
