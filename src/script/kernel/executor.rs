//! The engine thread: one [`Session`] (the REPL's: engine, scope, script
//! functions) for the kernel's life, fed by the shell socket through a
//! channel. Rhai's values are `!Send`, so the session never leaves this
//! thread; only requests and finished messages cross.
//!
//! An execute request publishes `busy`, the input, the cell's streams as
//! they come, its value (`execute_result`: text, HTML, plotly JSON) or its
//! error (`error`: the kind, line and column, the caret text), then sends
//! the reply and `idle`. After an error, execute requests already queued
//! are answered `aborted` (when the request asked `stop_on_error`), as
//! Jupyter front ends expect.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use jupyter_protocol::{
    ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest, ExecuteResult, ExecutionCount,
    ExecutionState, ExpressionResult, JupyterMessage, JupyterMessageContent, Media, MediaType,
    ReplyError, ReplyStatus,
};

use super::introspect;
use super::outbox::{Channel, Outbox, Parent};
use super::streams::Streams;
use crate::script::display::{bundle, MimeBundle};
use crate::script::engine::{set_notice_sink, EngineOptions};
use crate::script::repl::{EvalError, Outcome, Session};

/// Work for the engine thread.
#[derive(Debug)]
pub enum Work {
    /// `execute_request`, `complete_request` or `inspect_request`.
    Request(Box<JupyterMessage>),
    /// Stop after the current request.
    Shutdown,
}

/// The engine thread's state.
pub struct Executor {
    session: Session,
    outbox: Outbox,
    streams: Streams,
    count: usize,
    rx: Receiver<Work>,
    /// Requests taken off the channel while aborting, to run next.
    queued: VecDeque<Work>,
    /// Set by a shutdown request: what is still queued is not run.
    stopping: Arc<AtomicBool>,
}

/// A cell's failure as Jupyter reports it.
fn reply_error(e: &EvalError) -> ReplyError {
    let at = match (e.line, e.column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    };
    ReplyError {
        ename: e.kind.clone(),
        evalue: format!("{at}{}", e.message),
        traceback: e.rendered.lines().map(str::to_string).collect(),
    }
}

/// The error of a cell that finished although it was interrupted.
fn interrupted() -> EvalError {
    let message = "interrupted (the cell's value is not shown; the objects keep what \
                   they did before the interrupt)"
        .to_string();
    EvalError {
        kind: "interrupted".into(),
        rendered: message.clone(),
        message,
        line: None,
        column: None,
    }
}

/// A MIME bundle as Jupyter's `data`.
pub fn media(b: &MimeBundle) -> Media {
    let mut v = vec![MediaType::Plain(b.plain.clone())];
    if let Some(h) = &b.html {
        v.push(MediaType::Html(h.clone()));
    }
    if let Some(p) = &b.plotly {
        v.push(MediaType::Plotly(p.clone()));
    }
    Media::new(v)
}

impl Executor {
    /// A session over the shared engine whose `print` streams to the cell.
    pub fn new(
        mut opts: EngineOptions,
        outbox: Outbox,
        rx: Receiver<Work>,
        stopping: Arc<AtomicBool>,
    ) -> Executor {
        let streams = Streams::new(outbox.clone());
        opts.print_sink = Some(streams.print_sink());
        opts.output = None;
        set_notice_sink(Some(streams.notice_sink()));
        crate::progress::set_sink(Some(streams.progress_sink()));
        Executor {
            session: Session::new(&opts),
            outbox,
            streams,
            count: 0,
            rx,
            queued: VecDeque::new(),
            stopping,
        }
    }

    /// Serves requests until a shutdown or until the sockets are gone.
    pub fn run(mut self) {
        loop {
            let work = match self.queued.pop_front() {
                Some(w) => w,
                None => match self.rx.recv() {
                    Ok(w) => w,
                    Err(_) => return,
                },
            };
            let Work::Request(msg) = work else {
                return;
            };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let parent = Parent::of(&msg);
            let is_execute = matches!(msg.content, JupyterMessageContent::ExecuteRequest(_));
            self.outbox.status(ExecutionState::Busy, Some(&parent));
            // A panic that escapes the guards must not end the session.
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| self.handle(&parent, *msg)));
            if r.is_err() {
                self.outbox.set_current(None);
                let err = ReplyError {
                    ename: "internal".into(),
                    evalue: "internal error (please report it); the session goes on".into(),
                    traceback: vec![],
                };
                if is_execute {
                    self.outbox.reply(
                        Channel::Shell,
                        &parent,
                        ExecuteReply {
                            status: ReplyStatus::Error,
                            execution_count: ExecutionCount::new(self.count),
                            user_expressions: Some(HashMap::new()),
                            error: Some(Box::new(err)),
                            ..ExecuteReply::default()
                        },
                    );
                }
            }
            self.outbox.status(ExecutionState::Idle, Some(&parent));
        }
    }

    fn handle(&mut self, parent: &Parent, msg: JupyterMessage) {
        match msg.content {
            JupyterMessageContent::ExecuteRequest(req) => {
                let stop = req.stop_on_error;
                if !self.execute(parent, req) && stop {
                    self.abort_queued();
                }
            }
            JupyterMessageContent::CompleteRequest(req) => {
                let r = introspect::complete(&self.session, &req.code, req.cursor_pos);
                self.outbox.reply(Channel::Shell, parent, r);
            }
            JupyterMessageContent::InspectRequest(req) => {
                let r = introspect::inspect(&self.session, &req.code, req.cursor_pos);
                self.outbox.reply(Channel::Shell, parent, r);
            }
            _ => {}
        }
    }

    /// Runs one cell; false when it failed.
    fn execute(&mut self, parent: &Parent, req: ExecuteRequest) -> bool {
        let silent = req.silent;
        if req.store_history && !silent {
            self.count += 1;
        }
        let count = ExecutionCount::new(self.count);
        if !silent {
            self.outbox.publish(
                ExecuteInput {
                    code: req.code.clone(),
                    execution_count: count,
                },
                Some(parent),
            );
        }
        self.outbox.set_current(Some(parent.clone()));
        let interrupts = crate::progress::interrupt_count();
        let mut result = self.run_code(&req.code);
        if result.is_ok() && crate::progress::interrupt_count() != interrupts {
            // `fit` returns normally when interrupted (the model keeps the
            // weights of its last step); the cell still counts as
            // interrupted, so the cells queued after it do not run.
            result = Err(interrupted());
        }
        self.streams.end_line();
        let ok = result.is_ok();
        let reply = match result {
            Ok(value) => {
                if let (Some(b), false) = (value, silent) {
                    self.outbox
                        .publish(ExecuteResult::new(count, media(&b)), Some(parent));
                }
                let exprs = req
                    .user_expressions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, code)| (k, self.expression(&code)))
                    .collect::<HashMap<_, _>>();
                ExecuteReply {
                    status: ReplyStatus::Ok,
                    execution_count: count,
                    user_expressions: Some(exprs),
                    ..ExecuteReply::default()
                }
            }
            Err(e) => {
                let err = reply_error(&e);
                if !silent {
                    self.outbox.publish(
                        ErrorOutput {
                            ename: err.ename.clone(),
                            evalue: err.evalue.clone(),
                            traceback: err.traceback.clone(),
                        },
                        Some(parent),
                    );
                }
                ExecuteReply {
                    status: ReplyStatus::Error,
                    execution_count: count,
                    user_expressions: Some(HashMap::new()),
                    error: Some(Box::new(err)),
                    ..ExecuteReply::default()
                }
            }
        };
        self.outbox.set_current(None);
        self.outbox.reply(Channel::Shell, parent, reply);
        ok
    }

    /// A cell's code: a `:command` or Rhai. `Ok(None)` for no value.
    fn run_code(&mut self, code: &str) -> Result<Option<MimeBundle>, EvalError> {
        let trimmed = code.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.starts_with(':') && !trimmed.contains('\n') {
            return match self.session.command(trimmed) {
                Some(Outcome::Text(t)) => Ok(Some(MimeBundle::text(t))),
                Some(Outcome::Error(e)) => Err(EvalError {
                    kind: "command".into(),
                    message: e.clone(),
                    line: None,
                    column: None,
                    rendered: e,
                }),
                Some(Outcome::Quit) => Ok(Some(MimeBundle::text(
                    "the kernel keeps running; use the notebook's Shut Down or Restart",
                ))),
                Some(Outcome::Nothing) | None => Ok(None),
            };
        }
        let v = self.session.eval_cell(code)?;
        if v.is_unit() {
            return Ok(None);
        }
        Ok(Some(bundle(self.session.engine(), &v)))
    }

    /// A `user_expressions` entry: its value as text, or its error.
    fn expression(&mut self, code: &str) -> ExpressionResult {
        match self.session.eval_cell(code) {
            Ok(v) => ExpressionResult::Ok {
                data: media(&bundle(self.session.engine(), &v)),
                metadata: Default::default(),
            },
            Err(e) => {
                let r = reply_error(&e);
                ExpressionResult::Error {
                    ename: r.ename,
                    evalue: r.evalue,
                    traceback: r.traceback,
                }
            }
        }
    }

    /// Answers the execute requests already waiting with `aborted`; other
    /// requests stay queued.
    fn abort_queued(&mut self) {
        let mut keep = VecDeque::new();
        while let Ok(w) = self.rx.try_recv() {
            match w {
                Work::Request(msg)
                    if matches!(msg.content, JupyterMessageContent::ExecuteRequest(_)) =>
                {
                    let parent = Parent::of(&msg);
                    self.outbox.status(ExecutionState::Busy, Some(&parent));
                    self.outbox.reply(
                        Channel::Shell,
                        &parent,
                        ExecuteReply {
                            status: ReplyStatus::Aborted,
                            execution_count: ExecutionCount::new(self.count),
                            user_expressions: Some(HashMap::new()),
                            ..ExecuteReply::default()
                        },
                    );
                    self.outbox.status(ExecutionState::Idle, Some(&parent));
                }
                other => keep.push_back(other),
            }
        }
        self.queued.extend(keep);
    }
}
