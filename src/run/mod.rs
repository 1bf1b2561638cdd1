//! One run end to end: profile → corpus → plan → preflight → scheduler/workers →
//! recorder → results folder. The only place that wires the stages together.

pub mod extproc;

use crate::corpus::load_corpus;
use crate::error::Error;
use crate::plan::{Mix, Plan};
use crate::profile::Profile;
use crate::record::{RecordWriter, Recorder};
use crate::results::{write_run, RunInfo, Summary};
use crate::schedule::{run_workers, CompletionSink, DriverConfig, Progress, RateSchedule};
use crate::transport::http::{Endpoint, HttpTransport, Negotiated};
use crate::transport::Transport;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// Stop a run after this many requests in a row could not even connect.
pub const DEAD_TARGET_AFTER: u64 = 200;

/// What the caller wants besides the profile.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Where the profile came from, for error messages ("profiles/x.yaml" or "flags").
    pub origin: String,
    /// Write into exactly this folder instead of `results_dir/<run-id>`.
    pub out: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// This process's shard of the schedule (default 0/1: everything).
    pub shard: crate::schedule::Shard,
    /// Wall-clock instant at which the schedule starts (shared by all shards).
    pub start_at: Option<SystemTime>,
}

pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: Summary,
}

/// Slots (`None` = bounded by time), open-loop schedule (`None` = closed loop) and a time
/// limit, derived from the profile and the plan.
type DriverShape = (Option<u64>, Option<RateSchedule>, Option<Duration>);

fn driver_shape(profile: &Profile, plan: &Plan) -> Result<DriverShape, Error> {
    if profile.max {
        let slots = match (profile.requests, profile.duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(plan.corpus_pass_len()),
        };
        return Ok((slots, None, profile.duration));
    }
    if let Mix::Replay { .. } = plan.mix {
        let offsets = plan.replay_offsets_us();
        let slots = match profile.requests {
            Some(n) => (n).min(offsets.len() as u64),
            None => offsets.len() as u64,
        };
        return Ok((
            Some(slots),
            Some(RateSchedule::replay(offsets)),
            profile.duration,
        ));
    }
    let schedule = RateSchedule::from_profile(profile);
    let slots =
        match (profile.requests, schedule.arrivals()) {
            (Some(n), Some(a)) => Some(n.min(a)),
            (Some(n), None) => Some(n),
            (None, Some(a)) => Some(a),
            (None, None) => match plan.mix {
                Mix::Corpus | Mix::Replay { .. } => Some(plan.corpus_pass_len()),
                Mix::Share { .. } => return Err(Error::flag(
                    "--duration",
                    "with a benign share the run needs a bound: set duration, requests or stages",
                )),
            },
        };
    Ok((slots, Some(schedule), None))
}

/// The single request of `--plain` mode: GET of the target URL's path.
fn plain_get(path: &str) -> crate::corpus::CorpusRequest {
    crate::corpus::CorpusRequest {
        set: "plain".into(),
        case: "get".into(),
        benign: true,
        api: false,
        type_label: "plain GET".into(),
        placeholder: "None",
        encoder: "Plain",
        payload_index: 0,
        payload: String::new(),
        built: Ok(crate::corpus::RequestSpec {
            method: "GET".into(),
            target: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
            headers: Vec::new(),
            body: Vec::new(),
        }),
    }
}

/// A run id that sorts by time and names the profile: `20261129-034501-demo`.
pub fn new_run_id(name: Option<&str>) -> String {
    let now = chrono::Local::now();
    let name: String = name
        .unwrap_or("run")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{}-{}", now.format("%Y%m%d-%H%M%S"), name)
}

/// A run with everything decided except the transport: corpus loaded, plan built.
pub struct PreparedRun {
    pub profile: Profile,
    pub options: RunOptions,
    pub plan: Arc<Plan>,
    pub classifier: Arc<crate::classify::Classifier>,
    slots: Option<u64>,
    schedule: Option<RateSchedule>,
    duration_limit: Option<Duration>,
}

impl PreparedRun {
    /// Validates the profile, loads the corpus and builds the plan. No network yet.
    pub fn new(profile: &Profile, options: &RunOptions) -> Result<PreparedRun, Error> {
        profile.validate_runnable(&options.origin)?;
        let plan = if profile.plain && profile.corpus.is_empty() {
            Plan::from_requests(
                profile,
                vec![plain_get(&crate::plan::base_path_of(profile)?)],
            )?
        } else {
            Plan::build(profile, &load_corpus(&profile.corpus)?)?
        };
        PreparedRun::with_plan(profile, options, plan)
    }

    /// A run of an already built plan (generated traffic such as a body-size sweep).
    pub fn with_plan(
        profile: &Profile,
        options: &RunOptions,
        plan: Plan,
    ) -> Result<PreparedRun, Error> {
        profile.validate_target(&options.origin)?;
        let plan = Arc::new(plan);
        let classifier = Arc::new(
            profile
                .classify
                .compile()
                .map_err(|e| Error::flag("--profile", format!("classify: {e}")))?,
        );
        let (slots, schedule, duration_limit) = driver_shape(profile, &plan)?;
        Ok(PreparedRun {
            profile: profile.clone(),
            options: options.clone(),
            plan,
            classifier,
            slots,
            schedule,
            duration_limit,
        })
    }

    /// Requests the driver will schedule (`None` = bounded by time only).
    pub fn slots(&self) -> Option<u64> {
        self.slots
    }
}

/// Runs a profile against an HTTP target and writes its results folder.
pub async fn run(
    profile: &Profile,
    options: &RunOptions,
    cancel: CancellationToken,
) -> Result<RunOutcome, Error> {
    run_prepared(PreparedRun::new(profile, options)?, cancel).await
}

/// Runs a prepared run against its profile's HTTP target.
pub async fn run_prepared(
    prepared: PreparedRun,
    cancel: CancellationToken,
) -> Result<RunOutcome, Error> {
    let profile = &prepared.profile.clone();
    let endpoint = Endpoint::prepare(profile).await?;
    let protocol = match endpoint.version {
        Negotiated::H1 => "h1",
        Negotiated::H2 => "h2",
    };
    execute(
        prepared,
        Arc::new(HttpTransport::new(endpoint)),
        protocol,
        cancel,
    )
    .await
}

/// Sends a prepared run over any transport and writes its results folder.
pub async fn execute<T: Transport>(
    prepared: PreparedRun,
    transport: Arc<T>,
    protocol: &str,
    cancel: CancellationToken,
) -> Result<RunOutcome, Error> {
    let PreparedRun {
        profile,
        options,
        plan,
        classifier,
        slots,
        schedule,
        duration_limit,
    } = prepared;
    let profile = &profile;
    let options = &options;
    let run_id = new_run_id(profile.name.as_deref());
    let dir = match &options.out {
        Some(d) => d.clone(),
        None => unique_dir(profile.results_dir.join(&run_id)),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let shard = options.shard;
    // Schedule zero: a shared wall-clock instant for shards, else 20 ms from now.
    let (start, started_wall) = match options.start_at {
        Some(at) => {
            let now_wall = SystemTime::now();
            let now = Instant::now();
            match at.duration_since(now_wall) {
                Ok(wait) => (now + wait, at),
                Err(e) if e.duration() < Duration::from_secs(1) => (now, now_wall),
                Err(e) => {
                    return Err(Error::flag(
                        "--start-at",
                        format!(
                            "the start time passed {:.1} s ago",
                            e.duration().as_secs_f64()
                        ),
                    ))
                }
            }
        }
        None => (
            Instant::now() + Duration::from_millis(20),
            SystemTime::now() + Duration::from_millis(20),
        ),
    };
    // Shards of one run share the request-id prefix (derived from the common start), so
    // WAF logs of the merged run correlate.
    let request_id_prefix =
        request_id_prefix(started_wall, profile.seed, options.start_at.is_none());

    let progress = Arc::new(Progress::default());
    let writer = RecordWriter::create(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut recorder = Recorder::new(start, plan.sources.len(), Some(writer), progress.clone())
        .close_seconds_after(profile.timeout);
    // Unsendable corpus requests are recorded once per run: by shard 0.
    let unsendable: &[u32] = if shard.index == 0 {
        &plan.unsendable
    } else {
        &[]
    };
    for &source in unsendable {
        let reason = plan.sources[source as usize]
            .unsendable
            .clone()
            .unwrap_or_default();
        recorder
            .record_unsendable(source, &reason)
            .map_err(|e| Error::io(&dir, e))?;
    }
    let bar = options.progress.then(|| {
        let mine = slots.map(|n| shard.share_of(n));
        crate::cli::progress::ProgressDisplay::start(progress.clone(), mine, start)
    });

    // Where the WAF log ends before the first request, so only this run's entries are read.
    let monitor_cursor = profile.monitor.as_ref().map(|m| m.begin());
    let config = DriverConfig {
        slots,
        schedule: schedule.clone(),
        duration_limit,
        workers: transport.max_in_flight(),
        run_tag: request_id_prefix.clone(),
        dead_target_after: DEAD_TARGET_AFTER,
        start,
        shard,
        threads: profile.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
    };
    // One recorder per engine thread, merged into the first one at the end.
    let engines = config.engine_threads();
    let engine_recorders = (0..engines)
        .map(|_| recorder.another())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(&dir, e))?;
    let (stats, engine_recorders) = run_workers(
        transport.clone(),
        plan.clone(),
        classifier.clone(),
        config,
        cancel.clone(),
        engine_recorders,
        progress.clone(),
    )
    .await;
    // The schedule started once every connection was open: `start` or later.
    let started_wall = match stats.start {
        Some(actual) => {
            recorder.begin(actual);
            started_wall + actual.saturating_duration_since(start)
        }
        None => started_wall,
    };
    let started_at = chrono::DateTime::<chrono::Local>::from(started_wall).to_rfc3339();
    if engine_recorders.len() != engines {
        return Err(Error::Other(format!(
            "{} of {engines} engine threads failed; their records are lost",
            engines - engine_recorders.len()
        )));
    }
    let mut recorded = tokio::task::spawn_blocking(move || {
        for r in engine_recorders {
            recorder.absorb(r);
        }
        recorder.finish()
    })
    .await
    .map_err(|e| Error::Other(format!("recorder task: {e}")))?
    .map_err(|e| Error::io(&dir, e))?;
    progress.done.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        bar.finish().await;
    }
    let monitor = match (&profile.monitor, monitor_cursor) {
        (Some(spec), Some(cursor)) => {
            let (spec, prefix, run_dir) = (spec.clone(), request_id_prefix.clone(), dir.clone());
            let (back, summary) = tokio::task::spawn_blocking(move || {
                let summary = crate::classify::monitor::apply(
                    &spec,
                    &cursor,
                    &prefix,
                    &run_dir,
                    &mut recorded,
                );
                (recorded, summary)
            })
            .await
            .map_err(|e| Error::Other(format!("monitor task: {e}")))?;
            recorded = back;
            Some(summary)
        }
        _ => None,
    };

    let interrupted = if stats.stopped_dead_target {
        Some(format!(
            "target unreachable: {DEAD_TARGET_AFTER} connections in a row were refused"
        ))
    } else if cancel.is_cancelled() {
        Some("interrupted".to_string())
    } else {
        None
    };
    let info = RunInfo {
        run_id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(run_id),
        request_id_prefix,
        request_id_header: profile.request_id_header.clone(),
        started_at,
        finished_at: chrono::Local::now().to_rfc3339(),
        interrupted,
        target: profile.target.url.clone(),
        protocol: protocol.to_string(),
        mode: if profile.max { "closed" } else { "open" }.to_string(),
        requested_rate: schedule
            .as_ref()
            .map(|s| s.mean_rate() / shard.count as f64),
        mix: plan.mix.describe(),
        corpus: profile
            .corpus
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        seed: profile.seed,
        shard: (!shard.is_single()).then(|| format!("{}/{}", shard.index, shard.count)),
        start_unix_ms: started_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        unsendable: unsendable.len() as u64,
        merged_from: Vec::new(),
    };
    let profile_json = crate::plan::redacted_profile(profile);
    let mut summary = Summary::build(
        info,
        profile_json,
        crate::results::Labels::of_plan(&plan),
        &recorded,
        stats.sent,
        stats.not_sent,
    );
    if let Some(m) = monitor {
        summary.hints.extend(crate::classify::monitor::hints(
            &m,
            &profile.request_id_header,
        ));
        summary.detection_source = Some(if m.error.is_none() {
            m.source.clone()
        } else {
            "responses".to_string()
        });
        summary.monitor = Some(m);
    }
    write_run(&dir, &summary, &plan.sources, &recorded, started_wall)?;
    Ok(RunOutcome { dir, summary })
}

/// Short, unique-enough prefix for request ids, so WAF logs of different runs never mix.
/// With `with_pid` false it depends only on the start time and seed (shared by shards).
fn request_id_prefix(started: SystemTime, seed: u64, with_pid: bool) -> String {
    let ms = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let pid = if with_pid {
        std::process::id() as u64
    } else {
        0
    };
    let mixed = ms ^ seed.rotate_left(17) ^ pid << 40;
    format!("wl{:010x}", mixed & 0xff_ffff_ffff)
}

fn unique_dir(base: PathBuf) -> PathBuf {
    if !base.exists() {
        return base;
    }
    (2..)
        .map(|i| PathBuf::from(format!("{}-{i}", base.display())))
        .find(|p| !p.exists())
        .expect("some free name")
}
