//! Everything the kernel sends goes through one [`Outbox`]: the engine
//! thread, the progress sink and the socket tasks push [`Outgoing`]
//! messages into one queue, and the sender task writes them to their
//! sockets in that order (outputs before the reply that ends a cell).
//!
//! The outbox also remembers the request being executed, so output that
//! arrives from elsewhere (a progress bar, a notice) is attributed to the
//! right cell.

use std::sync::{Arc, Mutex};

use jupyter_protocol::{
    ExecutionState, Header, JupyterMessage, JupyterMessageContent, Status, Stdio, StreamContent,
};
use tokio::sync::mpsc::UnboundedSender;

/// The socket a message goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Shell,
    Control,
    IoPub,
}

/// A message for the sender task.
#[derive(Debug)]
pub enum Outgoing {
    Send(Channel, Box<JupyterMessage>),
    /// Sent after everything queued before it: the sender task ends.
    Close,
}

/// Where a reply goes: the request's header and routing identities.
#[derive(Debug, Clone)]
pub struct Parent {
    pub header: Header,
    pub identities: Vec<bytes::Bytes>,
}

impl Parent {
    /// The parent of everything `msg` causes.
    pub fn of(msg: &JupyterMessage) -> Parent {
        Parent {
            header: msg.header.clone(),
            identities: msg.zmq_identities.clone(),
        }
    }
}

/// A cloneable handle on the send queue (Send + Sync).
#[derive(Clone)]
pub struct Outbox {
    tx: UnboundedSender<Outgoing>,
    /// The kernel's session id (every header's `session`).
    session: Arc<str>,
    /// The request now executing (its outputs' parent).
    current: Arc<Mutex<Option<Parent>>>,
}

impl Outbox {
    pub fn new(tx: UnboundedSender<Outgoing>, session: &str) -> Outbox {
        Outbox {
            tx,
            session: Arc::from(session),
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// A message with a fresh header of this kernel's session.
    pub fn message(
        &self,
        content: impl Into<JupyterMessageContent>,
        parent: Option<&Parent>,
    ) -> JupyterMessage {
        let mut m = JupyterMessage::new(content, None);
        m.header.session = self.session.to_string();
        m.header.username = "primeflow".into();
        if let Some(p) = parent {
            m.parent_header = Some(p.header.clone());
            m.zmq_identities = p.identities.clone();
        }
        m
    }

    fn push(&self, channel: Channel, msg: JupyterMessage) {
        // The sender task is gone only while the kernel shuts down.
        let _ = self.tx.send(Outgoing::Send(channel, Box::new(msg)));
    }

    /// A reply to `parent` on `channel` (shell or control).
    pub fn reply(
        &self,
        channel: Channel,
        parent: &Parent,
        content: impl Into<JupyterMessageContent>,
    ) {
        let m = self.message(content, Some(parent));
        self.push(channel, m);
    }

    /// An IOPub message caused by `parent` (or, without one, by the
    /// request now executing).
    pub fn publish(&self, content: impl Into<JupyterMessageContent>, parent: Option<&Parent>) {
        let current;
        let parent = match parent {
            Some(p) => Some(p),
            None => {
                current = self.current();
                current.as_ref()
            }
        };
        let mut m = self.message(content, parent);
        // IOPub has no routing identities; the topic is set by the sender.
        m.zmq_identities.clear();
        self.push(Channel::IoPub, m);
    }

    /// `status: busy|idle|starting` for `parent`.
    pub fn status(&self, state: ExecutionState, parent: Option<&Parent>) {
        self.publish(
            Status {
                execution_state: state,
            },
            parent,
        );
    }

    /// Text on the current cell's stdout or stderr.
    pub fn stream(&self, name: Stdio, text: &str) {
        if text.is_empty() {
            return;
        }
        self.publish(
            StreamContent {
                name,
                text: text.to_string(),
            },
            None,
        );
    }

    /// Sets (or clears) the request whose outputs are being produced.
    pub fn set_current(&self, parent: Option<Parent>) {
        if let Ok(mut c) = self.current.lock() {
            *c = parent;
        }
    }

    /// The request now executing.
    pub fn current(&self) -> Option<Parent> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// Asks the sender task to end after what is queued.
    pub fn close(&self) {
        let _ = self.tx.send(Outgoing::Close);
    }
}
