//! The sockets, on their own thread with a single-threaded tokio runtime:
//!
//! | channel | ZeroMQ socket | served here |
//! |---|---|---|
//! | shell | ROUTER | `kernel_info`, `is_complete`, `comm_info`, `history`; `execute`, `complete`, `inspect` go to the engine thread |
//! | control | ROUTER | `interrupt` (the flag Ctrl-C sets), `shutdown`, `kernel_info` |
//! | iopub | PUB | everything the [`Outbox`] queues for it |
//! | stdin | ROUTER | bound; input requests are not offered (`allow_stdin` is ignored) |
//! | heartbeat | REP | echoes every ping |
//!
//! Nothing a client sends can stop these loops: an unreadable, unsigned or
//! wrongly signed message is logged on the kernel's stderr and dropped; a
//! request whose content does not fit its type gets an error reply; a
//! send to a client that is gone fails after at most [`SEND_TIMEOUT`] and
//! is logged. The session on the engine thread is never touched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use jupyter_protocol::{
    CommInfoReply, ConnectionInfo, ExecutionState, Header, HistoryReply, InterruptReply,
    JupyterMessage, JupyterMessageContent, ReplyStatus, ShutdownReply, UnknownMessage,
};
use tokio::sync::mpsc::UnboundedReceiver;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use super::executor::Work;
use super::outbox::{Channel, Outbox, Outgoing, Parent};
use super::wire::{self, Signer, WireError};
use super::{info, introspect};

/// The longest a send may wait on a slow or vanished client.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the socket thread lets zeromq's writer tasks flush the last
/// messages before it ends.
const FLUSH_GRACE: Duration = Duration::from_millis(300);

/// How long a shutdown waits for the running cell before the process ends.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A line in the kernel's log (its stderr, which Jupyter shows in the
/// server's terminal, never in the notebook).
pub fn log(text: impl std::fmt::Display) {
    eprintln!("[primeflow kernel] {text}");
}

/// What the request loops share.
#[derive(Clone)]
struct Ctx {
    signer: Signer,
    outbox: Outbox,
    work: Sender<Work>,
    stopping: Arc<AtomicBool>,
}

struct Sockets {
    shell: zeromq::RouterSocket,
    control: zeromq::RouterSocket,
    stdin: zeromq::RouterSocket,
    iopub: zeromq::PubSocket,
    hb: zeromq::RepSocket,
}

async fn bind<S: Socket>(socket: &mut S, what: &str, url: String) -> Result<(), String> {
    socket
        .bind(&url)
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot bind the {what} socket to {url}: {e}"))
}

async fn bind_all(c: &ConnectionInfo) -> Result<Sockets, String> {
    let mut s = Sockets {
        shell: zeromq::RouterSocket::new(),
        control: zeromq::RouterSocket::new(),
        stdin: zeromq::RouterSocket::new(),
        iopub: zeromq::PubSocket::new(),
        hb: zeromq::RepSocket::new(),
    };
    bind(&mut s.shell, "shell", c.shell_url()).await?;
    bind(&mut s.control, "control", c.control_url()).await?;
    bind(&mut s.stdin, "stdin", c.stdin_url()).await?;
    bind(&mut s.iopub, "iopub", c.iopub_url()).await?;
    bind(&mut s.hb, "heartbeat", c.hb_url()).await?;
    Ok(s)
}

/// Starts the socket thread. Returns once every socket is bound (or with
/// the reason one could not be).
pub fn start(
    conn: ConnectionInfo,
    signer: Signer,
    outbox: Outbox,
    outgoing: UnboundedReceiver<Outgoing>,
    work: Sender<Work>,
    stopping: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = std::thread::Builder::new()
        .name("kernel-sockets".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start the socket runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let sockets = match bind_all(&conn).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let ctx = Ctx {
                    signer: signer.clone(),
                    outbox,
                    work,
                    stopping,
                };
                let (shell_tx, shell_rx) = sockets.shell.split();
                let (control_tx, control_rx) = sockets.control.split();
                tokio::spawn(heartbeat(sockets.hb));
                tokio::spawn(requests(shell_rx, Channel::Shell, ctx.clone()));
                tokio::spawn(requests(control_rx, Channel::Control, ctx.clone()));
                tokio::spawn(drain_stdin(sockets.stdin));
                if let Some(pid) = std::env::var("JPY_PARENT_PID")
                    .ok()
                    .and_then(|p| p.parse::<i32>().ok())
                    .filter(|p| *p > 1)
                {
                    tokio::spawn(watch_parent(pid));
                }
                ctx.outbox.status(ExecutionState::Starting, None);
                send_all(outgoing, shell_tx, control_tx, sockets.iopub, signer).await;
                // zeromq's send hands a message to the peer's writer task
                // and returns before the bytes are written; leaving the
                // runtime at once cancels those tasks, and the last replies
                // (the shutdown reply: lost once in CI, under load) with
                // them. Let them run first.
                tokio::time::sleep(FLUSH_GRACE).await;
            });
        })
        .map_err(|e| format!("cannot start the socket thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the socket thread ended before binding its sockets".into()),
    }
}

/// Echoes heartbeats.
async fn heartbeat(mut hb: zeromq::RepSocket) {
    loop {
        match hb.recv().await {
            Ok(m) => {
                let _ = tokio::time::timeout(SEND_TIMEOUT, hb.send(m)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Reads and drops what arrives on stdin (no input requests are made).
async fn drain_stdin(mut s: zeromq::RouterSocket) {
    loop {
        if s.recv().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Ends the kernel when the process that started it is gone (Jupyter's
/// `JPY_PARENT_PID`), so a crashed server leaves no orphan.
async fn watch_parent(pid: i32) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // SAFETY: kill with signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            log(format!("the parent process {pid} is gone; exiting"));
            std::process::exit(0);
        }
    }
}

/// Serves a ROUTER socket's requests.
async fn requests(mut rx: zeromq::RouterRecvHalf, channel: Channel, ctx: Ctx) {
    loop {
        let frames = match rx.recv().await {
            Ok(m) => m.into_vec(),
            Err(e) => {
                log(format!("{channel:?}: receive failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match wire::decode(frames, &ctx.signer) {
            Ok(msg) => ctx.dispatch(channel, msg),
            Err(WireError::Content {
                identities,
                header,
                error,
            }) => ctx.bad_request(channel, identities, *header, &error),
            Err(e) => log(format!("{channel:?}: dropped a message: {e}")),
        }
    }
}

impl Ctx {
    /// Runs `f` between `busy` and `idle` (shell requests only: a status
    /// from the control channel would mislabel a running cell).
    fn with_status(&self, channel: Channel, parent: &Parent, f: impl FnOnce()) {
        if channel == Channel::Shell {
            self.outbox.status(ExecutionState::Busy, Some(parent));
        }
        f();
        if channel == Channel::Shell {
            self.outbox.status(ExecutionState::Idle, Some(parent));
        }
    }

    fn dispatch(&self, channel: Channel, msg: JupyterMessage) {
        let parent = Parent::of(&msg);
        let ob = &self.outbox;
        match &msg.content {
            JupyterMessageContent::KernelInfoRequest(_) => {
                self.with_status(channel, &parent, || {
                    ob.reply(channel, &parent, info::kernel_info())
                })
            }
            JupyterMessageContent::IsCompleteRequest(r) => {
                self.with_status(channel, &parent, || {
                    ob.reply(channel, &parent, introspect::is_complete(&r.code))
                })
            }
            JupyterMessageContent::CommInfoRequest(_) => self.with_status(channel, &parent, || {
                ob.reply(channel, &parent, CommInfoReply::default())
            }),
            JupyterMessageContent::HistoryRequest(_) => self.with_status(channel, &parent, || {
                ob.reply(channel, &parent, HistoryReply::new(Vec::new()))
            }),
            JupyterMessageContent::InterruptRequest(_) => {
                crate::progress::request_interrupt();
                ob.reply(channel, &parent, InterruptReply::new());
            }
            JupyterMessageContent::ShutdownRequest(r) => self.shutdown(channel, &parent, r.restart),
            JupyterMessageContent::ExecuteRequest(_)
            | JupyterMessageContent::CompleteRequest(_)
            | JupyterMessageContent::InspectRequest(_)
                if channel == Channel::Shell =>
            {
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if self.work.send(Work::Request(Box::new(msg))).is_err() {
                    log("the engine thread is gone; request dropped");
                }
            }
            other => log(format!(
                "{channel:?}: ignored a '{}' message",
                other.message_type()
            )),
        }
    }

    /// A request whose content does not fit its type: an error reply (with
    /// busy/idle around it on shell), so the client is not left waiting.
    fn bad_request(
        &self,
        channel: Channel,
        identities: Vec<bytes::Bytes>,
        header: Header,
        error: &str,
    ) {
        log(format!(
            "{channel:?}: malformed '{}': {error}",
            header.msg_type
        ));
        let Some(kind) = header.msg_type.strip_suffix("_request") else {
            return;
        };
        let parent = Parent {
            header: header.clone(),
            identities,
        };
        let content = UnknownMessage {
            msg_type: format!("{kind}_reply"),
            content: serde_json::json!({
                "status": "error",
                "ename": "bad_request",
                "evalue": format!("the {} content does not fit the protocol: {error}", header.msg_type),
                "traceback": [],
            }),
        };
        self.with_status(channel, &parent, || {
            self.outbox.reply(channel, &parent, content)
        });
    }

    /// Replies, stops the running cell and the engine thread; the process
    /// ends when the engine is done, or after [`SHUTDOWN_GRACE`].
    fn shutdown(&self, channel: Channel, parent: &Parent, restart: bool) {
        self.stopping.store(true, Ordering::SeqCst);
        self.outbox.reply(
            channel,
            parent,
            ShutdownReply {
                restart,
                status: ReplyStatus::Ok,
                error: None,
            },
        );
        crate::progress::request_interrupt();
        let _ = self.work.send(Work::Shutdown);
        tokio::spawn(async {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            log("the running cell did not stop in time; exiting");
            std::process::exit(0);
        });
    }
}

/// The IOPub topic of a message (as ipykernel names them).
fn topic(msg: &JupyterMessage) -> String {
    match &msg.content {
        JupyterMessageContent::StreamContent(s) => {
            let name = match s.name {
                jupyter_protocol::Stdio::Stdout => "stdout",
                jupyter_protocol::Stdio::Stderr => "stderr",
            };
            format!("stream.{name}")
        }
        c => format!("kernel.{}.{}", msg.header.session, c.message_type()),
    }
}

/// Appends the stream messages queued right behind `msg` (same stream,
/// same cell) to it, so a chatty loop costs one message per batch; returns
/// the first queued message that is not such a stream.
fn coalesce(msg: &mut JupyterMessage, rx: &mut UnboundedReceiver<Outgoing>) -> Option<Outgoing> {
    let JupyterMessageContent::StreamContent(s) = &mut msg.content else {
        return None;
    };
    let parent_id = msg.parent_header.as_ref().map(|h| h.msg_id.clone());
    while let Ok(next) = rx.try_recv() {
        match &next {
            Outgoing::Send(Channel::IoPub, m)
                if m.parent_header.as_ref().map(|h| &h.msg_id) == parent_id.as_ref() =>
            {
                match &m.content {
                    JupyterMessageContent::StreamContent(t)
                        if std::mem::discriminant(&t.name) == std::mem::discriminant(&s.name)
                            && s.text.len() < 1 << 20 =>
                    {
                        s.text.push_str(&t.text);
                    }
                    _ => return Some(next),
                }
            }
            _ => return Some(next),
        }
    }
    None
}

/// Writes every queued message to its socket, in order, until
/// [`Outgoing::Close`].
async fn send_all(
    mut rx: UnboundedReceiver<Outgoing>,
    mut shell: zeromq::RouterSendHalf,
    mut control: zeromq::RouterSendHalf,
    mut iopub: zeromq::PubSocket,
    signer: Signer,
) {
    let mut next: Option<Outgoing> = None;
    loop {
        let item = match next.take() {
            Some(i) => i,
            None => match rx.recv().await {
                Some(i) => i,
                None => return,
            },
        };
        let (channel, mut msg) = match item {
            Outgoing::Close => return,
            Outgoing::Send(c, m) => (c, m),
        };
        if channel == Channel::IoPub {
            next = coalesce(&mut msg, &mut rx);
        }
        let t = (channel == Channel::IoPub).then(|| topic(&msg));
        let frames = wire::encode(&msg, &signer, t.as_deref());
        let Ok(z) = ZmqMessage::try_from(frames) else {
            continue;
        };
        let sent = match channel {
            Channel::Shell => tokio::time::timeout(SEND_TIMEOUT, shell.send(z)).await,
            Channel::Control => tokio::time::timeout(SEND_TIMEOUT, control.send(z)).await,
            Channel::IoPub => tokio::time::timeout(SEND_TIMEOUT, iopub.send(z)).await,
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log(format!(
                "{channel:?}: could not send '{}': {e}",
                msg.header.msg_type
            )),
            Err(_) => log(format!(
                "{channel:?}: sending '{}' timed out (the client is not reading)",
                msg.header.msg_type
            )),
        }
    }
}
