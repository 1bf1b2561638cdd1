//! Interop with an ExternalProcessor we did not write: tests/python/extproc_server.py, built
//! on Envoy's published Python protos (xds-protos) and grpcio, in the venv that
//! tests/python/setup.sh creates (`.ci/run` calls it). Without the venv the test is skipped
//! with a message, except under CI=true where that is a failure.

#[path = "support/extproc.rs"]
mod support;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;
use wafload::transport::extproc::{BodyMode, ExtProcSettings, ProcessorTls};

struct PythonProcessor {
    child: Child,
    addr: String,
}

impl Drop for PythonProcessor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_python() -> Option<PythonProcessor> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        let why = format!(
            "{} is missing: run tests/python/setup.sh (creates the venv with xds-protos + grpcio)",
            python.display()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}");
        }
        eprintln!("skip: {why}");
        return None;
    }
    let mut child = Command::new(&python)
        .arg(root.join("extproc_server.py"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the python processor");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                let _ = tx.send(addr.to_string());
                return;
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("the python processor did not report LISTENING within 30 s");
        }
    };
    Some(PythonProcessor { child, addr })
}

fn settings(mode: BodyMode, chunk_size: usize) -> ExtProcSettings {
    ExtProcSettings {
        request_body_mode: mode,
        response_body_mode: mode,
        chunk_size,
        response_phases: true,
        response_body_size: 8192,
        ..ExtProcSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_interoperates_with_a_python_processor() {
    let Some(py) = start_python() else { return };
    let url = format!("grpc://{}", py.addr);
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    write_case(&corpus, "py-false-pos", "benign", &"a".repeat(8192));
    let mut attack = "a".repeat(8192);
    attack.replace_range(5000..5007, "<script");
    write_case(&corpus, "py-attacks", "body", &attack);
    let dir = corpus.join("py-attacks");
    std::fs::write(
        dir.join("path.yml"),
        "payload:\n  - \"../../etc/passwd\"\nencoder: [Plain]\nplaceholder:\n  - URLParam\ntype: t\n",
    )
    .unwrap();

    for (i, mode) in [BodyMode::Buffered, BodyMode::Streamed]
        .into_iter()
        .enumerate()
    {
        let p = profile(&corpus, &tmp.path().join(i.to_string()), 30, 2);
        let out = run_direct(&p, &url, settings(mode, 2048), ProcessorTls::default()).await;
        let s = &out.summary;
        let x = s.ext_proc.as_ref().unwrap();
        eprintln!(
            "{mode:?}: {:?} {:?} {:?}",
            s.counts,
            x.blocked_at,
            x.phases.keys()
        );
        // 3 corpus requests, 10 passes each: benign passes, both attacks are blocked.
        assert_eq!(s.counts["passed"], 10, "{mode:?}");
        assert_eq!(s.counts["blocked"], 20, "{mode:?}");
        assert_eq!(s.statuses["403"], 20);
        assert_eq!(s.counts["failed"], 0);
        assert_eq!(x.blocked_at["request_headers"], 10);
        let body_block = match mode {
            // 2 KiB chunks: bytes 5000..5007 complete in chunk 3.
            BodyMode::Streamed => "request_body#3",
            _ => "request_body#1",
        };
        assert_eq!(x.blocked_at[body_block], 10, "{mode:?}: {:?}", x.blocked_at);
        // Benign requests go through every phase, response phases included.
        assert_eq!(x.round_trips["response_headers"], 10);
        let body_messages = if mode == BodyMode::Streamed { 4 } else { 1 };
        assert_eq!(x.round_trips["response_body"], 10 * body_messages);
    }
}
