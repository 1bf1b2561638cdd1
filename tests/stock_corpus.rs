//! The stock gotestwaf corpus goes on the wire: every one of its 820 non-gRPC requests is
//! built and sent, and request shapes arrive byte for byte as the corpus doc prescribes.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wafload::target::{self, TargetConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stock_request_is_built_and_sent_once() {
    let Some(shared) = shared_dir() else { return };
    let target = target::start(TargetConfig::default()).await.unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(
        &target.url(),
        &[shared.join("corpora/gotestwaf/testcases")],
        results.path(),
    );
    p.rate = Some(500.0);
    let s = run_profile(&p).await.summary;
    assert_eq!(s.sent, 820);
    assert_eq!(s.unsupported.get("gRPC"), Some(&2));
    assert_eq!(
        s.count(wafload::classify::Class::Failed),
        0,
        "{:?}",
        s.errors
    );
    assert_eq!(s.count(wafload::classify::Class::Unsendable), 0);
    let seen = target.stats();
    assert_eq!(seen.requests, 820);
    // non-crud.yml sends 2 payloads with the custom method CUST.
    assert_eq!(
        seen.by_method.get("OTHER").copied().unwrap_or(0)
            + seen.by_method.get("CUST").copied().unwrap_or(0),
        2,
        "{:?}",
        seen.by_method
    );
    // false-pos is the benign set: 141 requests.
    assert_eq!(s.detection.benign.total(), 141);
    target.shutdown().await;
}

/// A raw HTTP/1.1 server that records each request head and body as bytes on the wire.
async fn capture_server() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Parse as many complete requests as the buffer holds.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            break;
                        }
                        let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
                        store.lock().unwrap().push(request);
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_shapes_arrive_verbatim_on_the_wire() {
    let (url, seen) = capture_server().await;
    let corpus = tempfile::tempdir().unwrap();
    let set = corpus.path().join("shapes");
    std::fs::create_dir_all(&set).unwrap();
    std::fs::write(
        set.join("paths.yml"),
        "payload:\n  - \"../../etc/passwd\"\n  - \"1' or '1'='1 <x>\"\nencoder:\n  - Plain\nplaceholder:\n  - URLPath\n  - UserAgent\n",
    )
    .unwrap();
    std::fs::write(
        set.join("raw.yml"),
        "payload:\n  - \"%0d%0aSet-Cookie: a=b\"\nencoder:\n  - Plain\nplaceholder:\n  - RawRequest:\n      method: PATCH\n      path: /api/items?q={{payload}}\n      headers:\n        Content-Type: application/json\n      body: '{\"name\": \"{{payload}}\"}'\n",
    )
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(&url, &[corpus.path().to_path_buf()], results.path());
    p.rate = Some(100.0);
    p.connections = 1;
    let s = run_profile(&p).await.summary;
    assert_eq!(s.sent, 5);
    let requests: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    let find = |prefix: &str| -> &String {
        requests
            .iter()
            .find(|r| r.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request starting {prefix:?} in {requests:#?}"))
    };
    // URLPath: no path normalisation, '..' segments go out as they are.
    find("GET /../../etc/passwd HTTP/1.1\r\n");
    // Space and '<' '>' are percent-encoded in the request-target; quotes stay.
    find("GET /1'%20or%20'1'='1%20%3Cx%3E HTTP/1.1\r\n");
    // UserAgent carries the payload verbatim (spaces and quotes included).
    let ua = requests
        .iter()
        .filter(|r| {
            r.to_lowercase()
                .contains("user-agent: 1' or '1'='1 <x>\r\n")
        })
        .count();
    assert_eq!(ua, 1, "{requests:#?}");
    // RawRequest: method, path with the already-encoded payload untouched, header and body.
    let raw = find("PATCH /api/items?q=%0d%0aSet-Cookie:%20a=b HTTP/1.1\r\n");
    assert!(
        raw.to_lowercase()
            .contains("content-type: application/json\r\n"),
        "{raw}"
    );
    assert!(
        raw.ends_with("\r\n\r\n{\"name\": \"%0d%0aSet-Cookie: a=b\"}"),
        "{raw}"
    );
    // Every request carries a request id and a Host header.
    for r in &requests {
        let lower = r.to_lowercase();
        assert!(lower.contains("\r\nx-request-id: wl"), "{r}");
        assert!(lower.contains("\r\nhost: 127.0.0.1:"), "{r}");
    }
}
