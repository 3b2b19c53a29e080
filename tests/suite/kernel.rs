//! Tests: `primeflow kernel`, the Jupyter kernel, over its real sockets,
//! driven by Python's jupyter_client (installed by `./setup.sh --python`),
//! and the Rhai notebook executed headless with the installed kernelspec.
//! Both run in CI (`CI` set): there a missing jupyter_client is a failure,
//! elsewhere the tests say they skipped.

use std::process::Command;
use std::time::Instant;

use crate::common::{bin, python, python_has, root, tmpdir};

/// True when the venv has what the tests drive the kernel with.
fn have_jupyter(modules: &[&str]) -> bool {
    let missing: Vec<&str> = modules.iter().copied().filter(|m| !python_has(m)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "python {} missing in {} (./setup.sh --python installs them)",
        missing.join(", "),
        python().display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    println!("skipped: {msg}");
    false
}

/// The protocol, step by step (tests/python/kernel_protocol.py): a
/// connection file, kernel_info, state across cells (`let x = 40;` then
/// `x + 2` gives 42, functions, imports), rich MIME types (an HTML metrics
/// table, plotly JSON beside HTML), an error reply with kind, line, column
/// and caret, completion, inspection, is_complete, interrupt_request and
/// SIGINT stopping a long `fit` with the model kept, malformed and wrongly
/// signed messages, a client vanishing mid-cell, shutdown; then the
/// installed kernelspec through a KernelManager: interrupt, restart,
/// shutdown.
#[test]
fn protocol_with_jupyter_client() {
    if !have_jupyter(&["jupyter_client", "zmq"]) {
        return;
    }
    let dir = tmpdir("kernel_protocol");
    let t = Instant::now();
    let out = Command::new(python())
        .arg(root().join("tests/python/kernel_protocol.py"))
        .arg(bin())
        .arg(&dir)
        .env("JUPYTER_PLATFORM_DIRS", "1")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}kernel protocol: {:.1}s", t.elapsed().as_secs_f64());
    let log = std::fs::read_to_string(dir.join("kernel.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}\nkernel log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "kernel_info",
        "state",
        "rich_output",
        "errors",
        "introspection",
        "interrupt_request",
        "sigint",
        "bad_messages",
        "vanished_client",
        "shutdown",
        "kernelspec_restart",
    ] {
        assert!(stdout.contains(&format!("ok {step} ")), "{step}: {stdout}");
    }
    // The kernel logged what it refused, and kept serving.
    assert!(log.contains("signature does not match"), "{log}");
    assert!(log.contains("malformed 'execute_request'"), "{log}");
}

/// `notebooks/quickstart_rhai.ipynb` runs headless through `jupyter
/// nbconvert --execute` with the kernelspec `primeflow kernel install`
/// writes; every cell runs without error and the metrics table and the PCA
/// view are in the executed notebook.
#[test]
fn rhai_notebook_executes_headless() {
    if !have_jupyter(&["jupyter_client", "nbconvert", "nbclient"]) {
        return;
    }
    let dir = tmpdir("kernel_notebook");
    let prefix = dir.join("prefix");
    let st = Command::new(bin())
        .args(["kernel", "install", "--prefix"])
        .arg(&prefix)
        .status()
        .expect("kernel install");
    assert!(st.success());
    let t = Instant::now();
    let out = Command::new(python())
        .args(["-m", "nbconvert", "--to", "notebook", "--execute"])
        .arg(root().join("notebooks/quickstart_rhai.ipynb"))
        .arg("--output-dir")
        .arg(&dir)
        .arg("--ExecutePreprocessor.timeout=600")
        .env("JUPYTER_PATH", prefix.join("share/jupyter"))
        .env("JUPYTER_PLATFORM_DIRS", "1")
        .output()
        .expect("run nbconvert");
    println!("rhai notebook: {:.1}s", t.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "nbconvert failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nb: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("quickstart_rhai.ipynb")).expect("executed notebook"),
    )
    .expect("notebook JSON");
    let outputs: Vec<&serde_json::Value> = nb["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .flat_map(|c| c["outputs"].as_array().into_iter().flatten())
        .collect();
    assert!(
        outputs.iter().all(|o| o["output_type"] != "error"),
        "a cell failed"
    );
    let data = |mime: &str| {
        outputs
            .iter()
            .filter(|o| o["output_type"] == "execute_result")
            .filter_map(|o| o["data"].get(mime))
            .count()
    };
    // Loss curve and PCA view: plotly JSON beside HTML; tables as HTML.
    assert!(data("application/vnd.plotly.v1+json") >= 2, "figures");
    let html: String = outputs
        .iter()
        .filter_map(|o| o["data"].get("text/html"))
        .map(|h| match h {
            serde_json::Value::Array(lines) => {
                lines.iter().filter_map(|l| l.as_str()).collect::<String>()
            }
            other => other.as_str().unwrap_or("").to_string(),
        })
        .collect();
    assert!(
        html.contains("<table") && html.contains("mmd_pca"),
        "metrics table"
    );
    assert!(
        !primeflow::plot::has_external_script(&html.replace("&quot;", "\"")),
        "figures load scripts from elsewhere"
    );
    // Training progress went to the stream.
    let streamed: String = outputs
        .iter()
        .filter(|o| o["output_type"] == "stream")
        .map(|o| match &o["text"] {
            serde_json::Value::Array(lines) => {
                lines.iter().filter_map(|l| l.as_str()).collect::<String>()
            }
            other => other.as_str().unwrap_or("").to_string(),
        })
        .collect();
    assert!(streamed.contains("train ["), "{streamed}");
}
