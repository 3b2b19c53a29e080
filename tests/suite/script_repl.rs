//! Tests: the real `primeflow repl` binary, driven through piped stdin and
//! through a pseudo-terminal (the line-evaluation function itself is tested
//! in `script.rs`).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{bin, devel, python, python_has, run_python, tmpdir};

/// A user's session at the REPL, one line at a time: load devel.h5ad, train
/// a tiny U-Net, sample, evaluate, plot; a typo and a multi-line function
/// on the way; the session survives the typo and keeps every variable.
#[test]
fn repl_walkthrough_on_devel_one_line_at_a_time() {
    let dir = tmpdir("script_repl_walkthrough");
    let lines = format!(
        r#"let data = Dataset::load("{devel}", #{{perturbation: "condition", covariates: ["cell_type"], control: "control"}});
let norman = data.subset(#{{cell_type: "k562"}});
let split = norman.split("combination", 42);
let model = UNetVelocity("tiny");
let history = Trainer(#{{preset: "tiny", steps: 6, batch_size: 32, log_every: 2}}).fit(model, split.train);
let pred = Sampler(#{{cells: 20, steps: 4, seed: 0}}).sample(model, split.test);
prnt(pred.n_cells)
let table = Metrics().evaluate(pred, split.test);
fn positive(t) {{
    t.get("rmse_average") > 0.0
}}
print(`rmse positive: ${{positive(table)}}`);
table
let c = split.test.units().filter(|u| !u.is_control)[0].condition;
split.test.pca_view(c, #{{unet: pred}}).save("{out}/pca.html")
history.plot().save("{out}/loss.html")
:vars
:quit
"#,
        devel = devel().display(),
        out = dir.display()
    );
    let mut child = Command::new(bin())
        .args(["repl", "--history", dir.join("history").to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the REPL");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    // The typo: a caret under it and a suggestion; the session went on.
    assert!(
        stderr.contains("prnt(pred.n_cells)\n^") && stderr.contains("did you mean"),
        "{stderr}"
    );
    // The multi-line function was defined and used.
    assert!(
        stdout.contains("rmse positive: true"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    // The metrics table printed as a table.
    assert!(
        stdout.contains("PerturBench metrics:") && stdout.contains("mmd_pca_rank"),
        "{stdout}"
    );
    // Plots written and their paths echoed.
    for f in ["pca.html", "loss.html"] {
        let p = dir.join(f);
        assert!(p.exists(), "{} missing", p.display());
        assert!(stdout.contains(&p.display().to_string()), "{stdout}");
    }
    // :vars lists the objects by their script type names.
    for v in [
        "data: Dataset",
        "model: Model = UNetVelocity",
        "history: History",
        "pred: Dataset",
        "table: MetricsTable",
    ] {
        assert!(stdout.contains(v), "':vars' lacks '{v}': {stdout}");
    }
    // Every input (the function as one entry) is in the history file.
    let hist = std::fs::read_to_string(dir.join("history")).unwrap();
    assert!(
        hist.contains("let table = Metrics().evaluate(pred, split.test);"),
        "{hist}"
    );
    assert!(hist.contains("fn positive(t) {"), "{hist}");
}

/// The REPL on a real terminal (a pty from Python's standard library):
/// tab completion, a block typed over several lines, a caret under an
/// error, Ctrl-C (the terminal's ^C) during `fit` back to the prompt with
/// the variables intact, and the history file.
#[test]
fn repl_on_a_terminal_completes_continues_blocks_and_survives_ctrl_c() {
    if !python_has("pty") {
        println!(
            "skipped: python's pty module is missing ({})",
            python().display()
        );
        return;
    }
    let dir = tmpdir("script_repl_pty");
    let hist = dir.join("history");
    let code = format!(
        r#"
import os, pty, select, sys, time
BIN, HIST = {bin:?}, {hist:?}
pid, fd = pty.fork()
if pid == 0:
    env = dict(os.environ, TERM="xterm")
    os.execve(BIN, [BIN, "repl", "--history", HIST], env)
buf = b""
def until(pat, timeout=120):
    global buf
    end = time.time() + timeout
    while pat.encode() not in buf:
        r, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
        if not r:
            sys.exit(f"timeout waiting for {{pat!r}}; got:\n{{buf.decode(errors='replace')}}")
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            sys.exit(f"the REPL ended while waiting for {{pat!r}}; got:\n{{buf.decode(errors='replace')}}")
        buf += chunk
    i = buf.index(pat.encode()) + len(pat)
    seen, buf = buf[:i], buf[i:]
    return seen.decode(errors="replace")
def send(s):
    os.write(fd, s.encode())
    time.sleep(0.2)
until("primeflow> ")
send("let abc_value = 40;\r"); until("primeflow> ")
# Tab completes the variable name.
send("abc_v\t"); send(" + 2\r"); until("42"); until("primeflow> ")
# A block over three lines.
send("fn twice(a) {{\r"); send("a * 21\r"); send("}}\r"); until("primeflow> ")
send("twice(2) + 1000\r"); until("1042"); until("primeflow> ")
# An error: caret and suggestion, the prompt comes back.
seen = ""
send("twice(nosuch_var)\r"); seen = until("primeflow> ")
assert "^" in seen and "nosuch_var" in seen, seen
# Ctrl-C during fit.
send('let data = Dataset::simulate(#{{preset: "tiny", seed: 0}}); let m = MlpVelocity("tiny"); let t = Trainer(#{{steps: 1000000, log_every: 10}});\r')
until("primeflow> ")
send("t.fit(m, data)\r")
time.sleep(4)
send("\x03")
until("training interrupted after step"); until("primeflow> ")
send("print(`alive ${{abc_value}} ${{m.is_built}} ${{t.history.interrupted}}`)\r"); until("alive 40 true true")
send(":quit\r")
os.waitpid(pid, 0)
print("ok")
"#,
        bin = bin().display().to_string(),
        hist = hist.display().to_string()
    );
    let out = run_python(&code);
    assert_eq!(out.trim(), "ok");
    let h = std::fs::read_to_string(&hist).unwrap();
    assert!(
        h.contains("let abc_value = 40;") && h.contains("abc_value + 2"),
        "{h}"
    );
    assert!(h.contains("fn twice(a) {"), "{h}");
}
