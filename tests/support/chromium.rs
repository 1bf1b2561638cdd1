//! Headless Chromium for report tests: find it (skip outside CI when it is absent, fail
//! under CI=true), dump a page's DOM after load, take a screenshot, and a canary HTTP
//! listener on loopback that Chromium is forced to use as its proxy, so any network
//! request a page makes is seen. Every wait is bounded.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Chromium's binary: $WAFLOAD_CHROMIUM, else the first of the usual names on PATH.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WAFLOAD_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome-stable",
            "google-chrome",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Chromium, or `None` after printing why the test is skipped. Under CI=true a missing
/// Chromium is a failure: CI installs it (Debian package `chromium`).
pub fn require(test: &str) -> Option<PathBuf> {
    match find() {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: chromium not found and CI=true (apt-get install -y chromium)")
        }
        None => {
            eprintln!("SKIP {test}: chromium not found (apt-get install -y chromium, or set WAFLOAD_CHROMIUM)");
            None
        }
    }
}

/// A loopback HTTP listener that records the request line of every connection and
/// answers 404. Chromium runs with it as its proxy, so a page that loads anything over
/// the network shows up here.
pub struct Canary {
    pub port: u16,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Canary {
    pub fn start() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind canary");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(900);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let n = stream.read(&mut buf).unwrap_or(0);
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let line = text.lines().next().unwrap_or("<no request line>");
                        h.lock().unwrap().push(line.to_string());
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Canary {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    /// Requests other than Chromium's own service traffic (see [`BROWSER_SERVICE_HOSTS`]).
    pub fn page_hits(&self) -> Vec<String> {
        self.hits()
            .into_iter()
            .filter(|line| !is_browser_service(line))
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hosts Chromium itself contacts even for a blank local page (network time, component
/// and account services), seen through the canary proxy with every background flag set.
/// They are not page requests; tests assert no payload mentions them, so this filter can
/// never hide a request a payload made.
pub const BROWSER_SERVICE_HOSTS: &[&str] = &[
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "clientservices.googleapis.com",
    "safebrowsing.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
];

/// Host of a proxy request line: "GET http://host/…" or "CONNECT host:443 …".
pub fn request_host(line: &str) -> String {
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("");
    let target = words.next().unwrap_or("");
    let authority = if method == "CONNECT" {
        target
    } else {
        target
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .unwrap_or(target)
    };
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .to_ascii_lowercase()
}

fn is_browser_service(line: &str) -> bool {
    BROWSER_SERVICE_HOSTS.contains(&request_host(line).as_str())
}

/// What one Chromium run gave back.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

fn base_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
        "--metrics-recording-only",
        "--mute-audio",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Runs Chromium with `args` on `page`, killing it after `limit`.
pub fn run(chromium: &Path, page: &Path, args: &[String], limit: Duration) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let started = Instant::now();
    let mut child = Command::new(chromium)
        .args(base_args(profile.path()))
        .args(args)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Drain pipes on threads so a large DOM cannot block Chromium on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    Output {
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
        elapsed,
    }
}

/// Proxy flags that send every request, loopback included, to `canary`.
pub fn proxy_args(canary: &Canary) -> Vec<String> {
    vec![
        format!("--proxy-server=http://127.0.0.1:{}", canary.port),
        "--proxy-bypass-list=<-loopback>".to_string(),
    ]
}

/// The DOM after load, serialised (`--dump-dom`).
pub fn dump_dom(chromium: &Path, page: &Path, extra: &[String]) -> Output {
    let mut args = vec!["--dump-dom".to_string()];
    args.extend_from_slice(extra);
    run(chromium, page, &args, Duration::from_secs(180))
}

/// A PNG screenshot of the page at `width` × `height` CSS pixels.
pub fn screenshot(chromium: &Path, page: &Path, png: &Path, width: u32, height: u32) -> Output {
    let args = vec![
        format!("--screenshot={}", png.display()),
        format!("--window-size={width},{height}"),
    ];
    run(chromium, page, &args, Duration::from_secs(180))
}
