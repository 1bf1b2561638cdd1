//! Test helper for the WAF lab (`lab/lab.sh`): a real nginx + ModSecurity + OWASP CRS on
//! loopback. Std-only so integration tests can `#[path]`-include it without extra crates.
//!
//! ```ignore
//! #[path = "support/lab.rs"]
//! mod lab;
//! let lab = match lab::Lab::start(1) {
//!     Ok(lab) => lab,
//!     Err(why) if std::env::var("CI").as_deref() != Ok("true") => { eprintln!("skip: {why}"); return; }
//!     Err(why) => panic!("{why}"),
//! };
//! ```
#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Debian paths the lab depends on; `lab_available` names the missing one.
const NGINX_CANDIDATES: [&str; 2] = ["/usr/sbin/nginx", "/usr/bin/nginx"];
const MODSEC_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so";
const CRS_BLOCKING_RULES: &str =
    "/usr/share/modsecurity-crs/rules/REQUEST-949-BLOCKING-EVALUATION.conf";
const INSTALL_HINT: &str =
    "apt-get install -y nginx libnginx-mod-http-modsecurity modsecurity-crs openssl";

/// Set this env var to keep a lab's run dir (logs, rendered config) after the test.
pub const KEEP_DIR_ENV: &str = "WAFLOAD_LAB_KEEP";

/// Makes run dirs unique across labs started by one test process.
static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running lab: one nginx master with five loopback fronts (ports below).
pub struct Lab {
    /// Temp run dir holding the rendered config, pid file and logs.
    pub dir: PathBuf,
    /// Plain `return 200` application echoing X-Request-Id.
    pub backend: u16,
    /// ModSecurity + CRS, blocking (SecRuleEngine On).
    pub waf: u16,
    /// ModSecurity + CRS, monitoring (SecRuleEngine DetectionOnly).
    pub detect: u16,
    /// The same proxy hop without ModSecurity, for overhead comparisons.
    pub baseline: u16,
    /// TLS + HTTP/2 front (self-signed cert) with the blocking config.
    pub tls: u16,
    pid: Option<u32>,
}

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("lab")
        .join("lab.sh")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Ok when nginx, the ModSecurity module, the CRS rules, openssl and lab.sh are all present;
/// otherwise the reason, so callers can skip (or fail under CI=true).
pub fn lab_available() -> Result<(), String> {
    if !NGINX_CANDIDATES.iter().any(|p| Path::new(p).is_file()) && !on_path("nginx") {
        return Err(format!(
            "WAF lab unavailable: nginx not found ({INSTALL_HINT})"
        ));
    }
    if !Path::new(MODSEC_MODULE).is_file() {
        return Err(format!(
            "WAF lab unavailable: {MODSEC_MODULE} missing ({INSTALL_HINT})"
        ));
    }
    if !Path::new(CRS_BLOCKING_RULES).is_file() {
        return Err(format!(
            "WAF lab unavailable: {CRS_BLOCKING_RULES} missing ({INSTALL_HINT})"
        ));
    }
    if !on_path("openssl") {
        return Err(format!(
            "WAF lab unavailable: openssl not on PATH ({INSTALL_HINT})"
        ));
    }
    if !on_path("bash") {
        return Err("WAF lab unavailable: bash not on PATH".to_string());
    }
    let script = lab_script();
    if !script.is_file() {
        return Err(format!("WAF lab unavailable: {} missing", script.display()));
    }
    Ok(())
}

/// Asks the OS for `count` distinct free loopback ports by holding that many listeners at once.
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("lab: cannot bind 127.0.0.1:0 to find free ports: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("lab: cannot read a probe listener's port: {e}"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True while `pid` runs. A zombie counts as gone: nginx's master is re-parented to PID 1
/// when lab.sh exits, and PID 1 may reap it only seconds after it exited.
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// `master` and its child processes (nginx workers), read from /proc.
fn process_tree(master: u32) -> Vec<u32> {
    let mut pids = vec![master];
    if let Ok(tasks) = fs::read_dir(format!("/proc/{master}/task")) {
        for task in tasks.flatten() {
            if let Ok(children) = fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    children
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    pids
}

impl Lab {
    /// Starts the lab via lab/lab.sh, or returns Err(reason) when the packages are missing
    /// or nginx fails (the caller skips outside CI, fails under CI=true).
    pub fn start(paranoia: u8) -> Result<Lab, String> {
        if !(1..=4).contains(&paranoia) {
            return Err(format!("lab: paranoia must be 1..=4, got {paranoia}"));
        }
        lab_available()?;
        let mut last_error = String::new();
        // Another process can take a probed port before nginx binds it: retry a few times.
        for _attempt in 0..4 {
            let ports = free_ports(5)?;
            let dir = std::env::temp_dir().join(format!(
                "wafload-lab-{}-{}",
                std::process::id(),
                LAB_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            let ports_arg = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let output = Command::new("bash")
                .arg(lab_script())
                .arg("start")
                .arg(&dir)
                .args(["--paranoia", &paranoia.to_string(), "--ports", &ports_arg])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("lab: cannot run bash {}: {e}", lab_script().display()))?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                last_error = format!(
                    "lab: lab.sh start failed ({}): {}",
                    output.status,
                    one_line(&stderr)
                );
                let _ = fs::remove_dir_all(&dir);
                if stderr.contains("Address already in use") {
                    continue;
                }
                return Err(last_error);
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            return Lab::from_ports_env(dir, &stdout);
        }
        Err(last_error)
    }

    /// Builds the handle from lab.sh's `key=value` output (same as RUN_DIR/ports.env).
    fn from_ports_env(dir: PathBuf, text: &str) -> Result<Lab, String> {
        let value = |key: &str| -> Result<&str, String> {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| format!("lab: lab.sh printed no '{key}=' line: {}", one_line(text)))
        };
        let port = |key: &str| -> Result<u16, String> {
            let raw = value(key)?;
            raw.parse()
                .map_err(|_| format!("lab: lab.sh printed a bad port {key}={raw}"))
        };
        let pid_raw = value("pid")?;
        let pid = pid_raw
            .parse()
            .map_err(|_| format!("lab: lab.sh printed a bad pid={pid_raw}"))?;
        let mut lab = Lab {
            dir,
            backend: 0,
            waf: 0,
            detect: 0,
            baseline: 0,
            tls: 0,
            pid: Some(pid),
        };
        // Fill the ports after `lab` exists so a parse error still stops nginx (via Drop).
        lab.backend = port("backend")?;
        lab.waf = port("waf")?;
        lab.detect = port("detect")?;
        lab.baseline = port("baseline")?;
        lab.tls = port("tls")?;
        Ok(lab)
    }

    /// JSON audit log (one object per line) of the blocking front.
    pub fn waf_audit_log(&self) -> PathBuf {
        self.dir.join("logs").join("modsec_audit_waf.json")
    }

    /// JSON audit log of the DetectionOnly front; would-block requests carry rule 949110.
    pub fn detect_audit_log(&self) -> PathBuf {
        self.dir.join("logs").join("modsec_audit_detect.json")
    }

    /// JSON audit log of the TLS front.
    pub fn tls_audit_log(&self) -> PathBuf {
        self.dir.join("logs").join("modsec_audit_tls.json")
    }

    /// nginx's error log (startup problems, one line per blocked request).
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("logs").join("error.log")
    }

    /// The nginx master's pid while the lab runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Master and worker pids, so a test can check that `stop` left nothing behind.
    pub fn process_ids(&self) -> Vec<u32> {
        self.pid.map(process_tree).unwrap_or_default()
    }

    /// Polls `log` (bounded by `timeout`) for a line containing `needle`, because ModSecurity
    /// writes the audit entry in nginx's log phase, just after the client got its response.
    pub fn wait_for_log_line(log: &Path, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = fs::read_to_string(log) {
                if let Some(line) = text.lines().find(|line| line.contains(needle)) {
                    return Some(line.to_string());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops nginx by the pid in the run dir (lab.sh stop waits for exit; TERM, then KILL after
    /// 10 s). Idempotent; also called from Drop.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let tree = process_tree(pid);
        match Command::new("bash")
            .arg(lab_script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "lab: lab.sh stop {} failed: {}",
                self.dir.display(),
                one_line(&String::from_utf8_lossy(&out.stderr))
            ),
            Err(e) => eprintln!("lab: cannot run lab.sh stop: {e}"),
        }
        // Fallback when lab.sh could not do it: signal the master and its workers directly.
        for signal in ["-TERM", "-KILL"] {
            let alive: Vec<String> = tree
                .iter()
                .filter(|&&p| process_alive(p))
                .map(u32::to_string)
                .collect();
            if alive.is_empty() {
                return;
            }
            let _ = Command::new("kill")
                .arg(signal)
                .args(&alive)
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while tree.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
        }
        if tree.iter().any(|&p| process_alive(p)) {
            eprintln!("lab: nginx pids {tree:?} still alive after KILL");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os(KEEP_DIR_ENV).is_some() {
            eprintln!("lab: kept run dir {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
