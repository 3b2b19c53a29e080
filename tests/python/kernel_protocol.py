"""Drives `primeflow kernel` with Python's jupyter_client, as Jupyter does.

    python kernel_protocol.py PRIMEFLOW_BINARY WORK_DIR

Part 1 starts the kernel from a connection file it writes, waits until the
kernel says it is serving, and checks over the real sockets: kernel_info;
state kept across cells (variables, functions, imported modules); rich
output MIME types (an HTML metrics table, a plotly figure beside its HTML);
an error reply with kind, line, column and caret; completion, inspection
and is_complete; an interrupt_request and a SIGINT that stop a long `fit`
with the model kept; malformed, unsigned and wrongly signed messages and a
client that vanishes mid-cell, after which the session still has its
variables; shutdown (the process exits 0).

Part 2 installs the kernelspec (`primeflow kernel install --prefix`) and
uses a KernelManager by kernel name: start, interrupt (message mode),
restart (a fresh session), shutdown.

Prints one `ok <step> <seconds>` line per step; any failure exits non-zero
with what was seen.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import zmq
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

BIN, WORK = sys.argv[1], sys.argv[2]
T0 = time.time()
STEP_T = [time.time()]


def ok(step):
    now = time.time()
    print(f"ok {step} {now - STEP_T[0]:.2f}", flush=True)
    STEP_T[0] = now


def fail(what):
    print(f"FAILED: {what}", flush=True)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)


def start_kernel(cf, log_path):
    """Starts the kernel and returns once it has bound its sockets."""
    proc = subprocess.Popen(
        [BIN, "kernel", "--connection-file", cf],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stderr.readline()
    check("serving" in line, f"the kernel did not start: {line!r}")
    # Keep reading its log (so the pipe never fills) into a file.
    import threading

    def pump():
        with open(log_path, "w") as log:
            log.write(line)
            for l in proc.stderr:
                log.write(l)
                log.flush()

    threading.Thread(target=pump, daemon=True).start()
    return proc


def client(cf):
    kc = BlockingKernelClient(connection_file=cf)
    kc.load_connection_file()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return kc


def run(kc, code, timeout=60):
    """Executes `code`; returns (reply content, iopub messages of the cell)."""
    outs = []
    reply = kc.execute_interactive(code, output_hook=outs.append, timeout=timeout)
    return reply["content"], outs


def result(outs):
    rs = [o["content"]["data"] for o in outs if o["msg_type"] == "execute_result"]
    return rs[0] if rs else None


def streams(outs, name=None):
    return "".join(
        o["content"]["text"]
        for o in outs
        if o["msg_type"] == "stream" and (name is None or o["content"]["name"] == name)
    )


def value(kc, code):
    reply, outs = run(kc, code)
    check(reply["status"] == "ok", f"{code!r} failed: {reply}")
    data = result(outs)
    check(data is not None, f"{code!r} showed no value: {outs}")
    return data["text/plain"]


def shell_reply(kc, msg_id, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        m = kc.get_shell_msg(timeout=max(0.1, end - time.time()))
        if m["parent_header"].get("msg_id") == msg_id:
            return m
    fail(f"no shell reply to {msg_id}")


def interrupt(kc, timeout=10):
    """interrupt_request on the control channel; returns the reply."""
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)
    end = time.time() + timeout
    while time.time() < end:
        m = kc.get_control_msg(timeout=max(0.1, end - time.time()))
        if m["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return m
    fail("no interrupt_reply")


def wait_for_stream(kc, msg_id, needle, timeout=60):
    """IOPub messages of `msg_id` until a stream holds `needle`."""
    end = time.time() + timeout
    seen = ""
    while time.time() < end:
        try:
            m = kc.get_iopub_msg(timeout=max(0.1, end - time.time()))
        except Exception:
            break
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
            seen += m["content"]["text"]
            if needle in seen:
                return seen
    fail(f"no stream with {needle!r} (seen {seen!r})")


def wait_idle(kc, msg_id, timeout=60):
    """IOPub messages of `msg_id` until its idle status; returns them."""
    end = time.time() + timeout
    outs = []
    while time.time() < end:
        m = kc.get_iopub_msg(timeout=max(0.1, end - time.time()))
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        outs.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return outs
    fail(f"{msg_id} never went idle")


# ---------------------------------------------------------------- part 1
cf = os.path.join(WORK, "connection.json")
key = str(uuid.uuid4())
write_connection_file(cf, ip="127.0.0.1", key=key.encode(), transport="tcp")
conn = json.load(open(cf))
proc = start_kernel(cf, os.path.join(WORK, "kernel.log"))
kc = client(cf)
ok("start")

msg_id = kc.kernel_info()
info = shell_reply(kc, msg_id)["content"]
li = info["language_info"]
check(li["name"] == "rhai" and li["file_extension"] == ".rhai", li)
check(li["version"][:1].isdigit(), li)
check(info["protocol_version"].startswith("5.") and info["implementation"] == "primeflow", info)
ok("kernel_info")

# State across cells: a variable, a function, an imported module.
reply, _ = run(kc, "let x = 40;")
check(reply["status"] == "ok" and reply["execution_count"] == 1, reply)
check(value(kc, "x + 2") == "42", "x + 2 != 42")
run(kc, "fn twice(v) { v * 2 }")
check(value(kc, "twice(x)") == "80", "twice(x)")
run(kc, 'import "sweep" as sw;')
check(value(kc, "sw::grid(#{a: [1, 2]}).len()") == "2", "module kept")
reply, outs = run(kc, 'print("hello"); x')
check(streams(outs, "stdout") == "hello\n", outs)
ok("state")

# Rich output: training progress on the stream, an HTML metrics table, a
# plotly figure beside its self-contained HTML.
reply, outs = run(
    kc,
    """let data = Dataset::simulate(#{preset: "tiny", seed: 0});
let split = data.split("combination", 1);
let model = MlpVelocity("tiny");
let trainer = Trainer(#{steps: 8, batch_size: 32, log_every: 2});
let history = trainer.fit(model, split.train);
let pred = Sampler(#{cells: 10, steps: 2, seed: 0}).sample(model, split.test);
Metrics().evaluate(pred, split.test)""",
    timeout=120,
)
check(reply["status"] == "ok", reply)
check("train [" in streams(outs), f"no training progress on the stream: {outs}")
table = result(outs)
check(table is not None and "<table" in table.get("text/html", ""), table)
check("rmse_average" in table["text/plain"], table)
reply, outs = run(kc, "history.plot()")
fig = result(outs)
check(fig is not None, outs)
plotly = fig.get("application/vnd.plotly.v1+json")
check(isinstance(plotly, dict) and "data" in plotly and "layout" in plotly, fig.keys())
check(fig.get("text/html", "").startswith("<iframe srcdoc="), "figure HTML")
check("Plotly.newPlot" in fig["text/html"], "plotly.js inlined")
ok("rich_output")

# An error: kind, line and column, the caret; the session goes on.
reply, outs = run(kc, "let a = 1;\nlet b = nosuch(a);")
check(reply["status"] == "error", reply)
check(reply["ename"] == "script", reply)
check("line 2, column 9" in reply["evalue"], reply["evalue"])
check(any("^" in l for l in reply["traceback"]), reply["traceback"])
errs = [o for o in outs if o["msg_type"] == "error"]
check(len(errs) == 1 and errs[0]["content"]["evalue"] == reply["evalue"], outs)
reply, _ = run(kc, 'Dataset::load("/no/such/file.h5ad")')
check(reply["status"] == "error" and reply["ename"] == "io", reply)
check(value(kc, "x") == "40", "the session survived the errors")
ok("errors")

# Completion, inspection, is_complete.
code = "let n = data.n_"
c = shell_reply(kc, kc.complete(code, len(code)))["content"]
check({"n_cells", "n_genes"} <= set(c["matches"]), c)
check(c["cursor_start"] == len("let n = data.") and c["cursor_end"] == len(code), c)
c = shell_reply(kc, kc.complete("twi", 3))["content"]
check("twice" in c["matches"], c)
c = shell_reply(kc, kc.complete("Datase", 6))["content"]
check(any(m.startswith("Dataset") for m in c["matches"]), c)
r = shell_reply(kc, kc.inspect("Trainer(", 8))["content"]
check(r["found"] and "Trainer" in r["data"]["text/plain"], r)
r = shell_reply(kc, kc.inspect("split.train.subset", 15))["content"]
check(r["found"], r)
r = shell_reply(kc, kc.inspect("model", 2))["content"]
check(r["found"] and r["data"]["text/plain"].startswith("model: Model"), r)
r = shell_reply(kc, kc.inspect("nosuchname", 3))["content"]
check(not r["found"], r)
r = shell_reply(kc, kc.is_complete("fn f(a) {"))["content"]
check(r["status"] == "incomplete", r)
r = shell_reply(kc, kc.is_complete("x + 1"))["content"]
check(r["status"] == "complete", r)
ok("introspection")

# interrupt_request during a long fit: the cell ends `interrupted`, the
# model keeps its weights, the trainer its history.
long_fit = "let t = Trainer(#{steps: 1000000, log_every: 10});\nt.fit(model, split.train)"
msg_id = kc.execute(long_fit)
wait_for_stream(kc, msg_id, "train [")
r = interrupt(kc)
check(r["content"]["status"] == "ok", r)
outs = wait_idle(kc, msg_id)
reply = shell_reply(kc, msg_id)["content"]
check(reply["status"] == "error" and reply["ename"] == "interrupted", reply)
check("training interrupted after step" in streams(outs, "stderr"), outs)
check(value(kc, "`${model.is_built} ${t.history.interrupted} ${x}`") == "true true 40", "after interrupt")
ok("interrupt_request")

# SIGINT does the same (a second one while idle does not end the kernel).
msg_id = kc.execute("t.fit(model, split.train)")
wait_for_stream(kc, msg_id, "train [")
os.kill(proc.pid, signal.SIGINT)
wait_idle(kc, msg_id)
reply = shell_reply(kc, msg_id)["content"]
check(reply["status"] == "error" and reply["ename"] == "interrupted", reply)
os.kill(proc.pid, signal.SIGINT)
os.kill(proc.pid, signal.SIGINT)
time.sleep(0.3)
check(proc.poll() is None, "SIGINT ended the kernel")
check(value(kc, "x") == "40", "after SIGINT")
ok("sigint")

# Malformed, unsigned and wrongly signed messages on the shell socket.
ctx = zmq.Context.instance()
raw = ctx.socket(zmq.DEALER)
raw.linger = 0
raw.connect(f"tcp://127.0.0.1:{conn['shell_port']}")
raw.send_multipart([b"garbage"])
raw.send_multipart([b"<IDS|MSG>", b"sig"])
good = Session(key=key.encode())
bad = Session(key=b"not-the-key")
bad.send(raw, "execute_request", {"code": "x = 0;", "silent": False})
unsigned = Session(key=b"")
unsigned.send(raw, "execute_request", {"code": "x = 0;", "silent": False})
# A correctly signed request whose content does not fit: an error reply.
msg = good.msg("execute_request", {"code": 5})
frames = good.serialize(msg)
raw.send_multipart(frames)
check(raw.poll(10000), "no reply to a malformed execute_request")
idents, parts = good.feed_identities(raw.recv_multipart())
rep = good.deserialize(parts)
check(rep["msg_type"] == "execute_reply" and rep["content"]["status"] == "error", rep)
check(value(kc, "x") == "40", "a bad message changed the session")
raw.close()
# The heartbeat answers throughout.
hb = ctx.socket(zmq.REQ)
hb.linger = 0
hb.connect(f"tcp://127.0.0.1:{conn['hb_port']}")
hb.send(b"ping")
check(hb.poll(5000) and hb.recv() == b"ping", "heartbeat")
hb.close()
ok("bad_messages")

# A client that disappears in the middle of a cell: a new client finds the
# session (and the interrupted cell's model) intact.
msg_id = kc.execute("let t2 = Trainer(#{steps: 1000000, log_every: 10});\nt2.fit(model, split.train)")
wait_for_stream(kc, msg_id, "train [")
kc.stop_channels()
time.sleep(0.5)
kc = client(cf)
interrupt(kc)
# The old cell ends (interrupted) before the new client's cells run; cells
# queued behind an interrupted cell are aborted, as after any error.
wait_idle(kc, msg_id)
check(value(kc, "`${x} ${t2.history.interrupted}`") == "40 true", "state after the client vanished")
ok("vanished_client")

# Shutdown: a reply, then the process ends with 0.
kc.shutdown()
r = kc.get_control_msg(timeout=10)
check(r["msg_type"] == "shutdown_reply" and r["content"]["status"] == "ok", r)
check(proc.wait(timeout=15) == 0, f"exit code {proc.returncode}")
kc.stop_channels()
ok("shutdown")

# ---------------------------------------------------------------- part 2
prefix = os.path.join(WORK, "prefix")
out = subprocess.run([BIN, "kernel", "install", "--prefix", prefix], capture_output=True, text=True)
check(out.returncode == 0, out.stderr)
spec = json.load(open(os.path.join(prefix, "share/jupyter/kernels/primeflow/kernel.json")))
check(os.path.isabs(spec["argv"][0]) and spec["language"] == "rhai", spec)
os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share/jupyter")
km = KernelManager(kernel_name="primeflow")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
check(value(kc, "let y = 7; y") == "7", "through the kernelspec")
msg_id = kc.execute(
    'let d = Dataset::simulate(#{preset: "tiny", seed: 0});\n'
    'let tr = Trainer(#{steps: 1000000, log_every: 10});\ntr.fit(MlpVelocity("tiny"), d)'
)
wait_for_stream(kc, msg_id, "train [")
km.interrupt_kernel()
wait_idle(kc, msg_id)
check(shell_reply(kc, msg_id)["content"]["ename"] == "interrupted", "interrupt by the manager")
km.restart_kernel(now=False)
kc.wait_for_ready(timeout=60)
reply, _ = run(kc, "y")
check(reply["status"] == "error", "a restarted kernel starts a fresh session")
check(value(kc, "1 + 1") == "2", "after restart")
kc.stop_channels()
km.shutdown_kernel(now=False)
check(not km.is_alive(), "shut down")
ok("kernelspec_restart")
print(f"all {time.time() - T0:.1f}s")
