//! Known answers for the sign-off tools: overhead of a +2 ms target, no difference between
//! identical targets, header-based decomposition, capacity of a target with a known
//! throughput limit, and the fail-open finding.

mod common;

use common::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wafload::analysis::capacity::{search, CapacityOptions};
use wafload::analysis::compare::ArmData;
use wafload::analysis::interleave::{interleave, Arm};
use wafload::analysis::overhead::overhead;
use wafload::analysis::slo::Slo;
use wafload::target::{self, Capacity, Delay, Faults, TargetConfig};

fn target_with(delay_ms: f64) -> TargetConfig {
    TargetConfig {
        markers: vec!["wafload-evil".into()],
        delay: Delay::Fixed(Duration::from_secs_f64(delay_ms / 1000.0)),
        ..TargetConfig::default()
    }
}

async fn interleaved(
    a_url: &str,
    b_url: &str,
    seed: u64,
    pairs: usize,
    block: Duration,
    results: &std::path::Path,
) -> (ArmData, ArmData) {
    let mut pa = profile(a_url, &[fixture("known")], results);
    pa.rate = Some(200.0);
    pa.benign_share = Some(0.5);
    pa.seed = seed;
    let mut pb = pa.clone();
    pb.target.url = b_url.to_string();
    let out = results.join(format!("il-{seed}"));
    let res = interleave(
        &Arm {
            label: "baseline".into(),
            profile: pa,
        },
        &Arm {
            label: "waf".into(),
            profile: pb,
        },
        pairs,
        block,
        &out,
        false,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    (
        ArmData::from_runs("baseline", &res.a_runs).unwrap(),
        ArmData::from_runs("waf", &res.b_runs).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overhead_of_a_two_millisecond_target_is_two_milliseconds() {
    let _guard = TIMING.lock().await;
    let base = target::start(target_with(1.0)).await.unwrap();
    let waf = target::start(target_with(3.0)).await.unwrap();
    let results = tempfile::tempdir().unwrap();
    let (base_url, waf_url) = (base.url(), waf.url());
    measure_up_to(3, |attempt| {
        let (base_url, waf_url) = (base_url.clone(), waf_url.clone());
        let dir = results.path().join(format!("attempt-{attempt}"));
        async move {
            let (a, b) = interleaved(&base_url, &waf_url, 1, 3, Duration::from_secs(1), &dir).await;
            ensure!(
                a.sent == 600 && b.sent == 600,
                "sent {} and {}",
                a.sent,
                b.sent
            );
            let c = overhead(Some(&a), &b, 1).comparison.unwrap();
            let p50 = &c.latency[0];
            eprintln!(
                "p50 diff {:.3} ms, CI {:.3} … {:.3}; {}",
                p50.diff, p50.low, p50.high, c.verdicts[0]
            );
            ensure!(
                (p50.diff - 2.0).abs() <= 0.3,
                "p50 overhead {} ms",
                p50.diff
            );
            // The known answer is 2 ms plus the difference in timer wake-up lag between a
            // 3 ms and a 1 ms sleep in the target (longer sleeps reach deeper CPU idle
            // states; measured 0–45 µs on CI machines), so the interval must sit in
            // [1.95, 2.1] ms rather than contain exactly 2.000 ms, and be tight.
            ensure!(
                p50.low <= 2.1 && 1.95 <= p50.high,
                "CI {}…{} misses 2 ms (+0.1 ms timer lag allowance)",
                p50.low,
                p50.high
            );
            ensure!(
                p50.high - p50.low <= 0.2,
                "CI {}…{} is wider than 0.2 ms",
                p50.low,
                p50.high
            );
            ensure!(
                c.verdicts[0].starts_with("p50: waf is ")
                    && c.verdicts[0].contains("slower than baseline"),
                "verdict {}",
                c.verdicts[0]
            );
            Ok(())
        }
    })
    .await;
    base.shutdown().await;
    waf.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_targets_show_no_significant_difference() {
    let _guard = TIMING.lock().await;
    let a_target = target::start(target_with(1.0)).await.unwrap();
    let b_target = target::start(target_with(1.0)).await.unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut same = 0;
    for seed in 1..=10u64 {
        let (a, b) = interleaved(
            &a_target.url(),
            &b_target.url(),
            seed,
            2,
            Duration::from_millis(500),
            results.path(),
        )
        .await;
        let c = wafload::analysis::compare::compare(&a, &b, seed);
        eprintln!("seed {seed}: {}", c.verdicts[0]);
        if c.verdicts[0].starts_with("p50: no significant difference") {
            same += 1;
        }
    }
    assert!(
        same >= 9,
        "only {same} of 10 said no significant difference"
    );
    a_target.shutdown().await;
    b_target.shutdown().await;
}

/// Gateway + filter time (p50, ms) of a target whose filter adds `filter_ms` and whose
/// upstream takes 5 ms and says so in x-envoy-upstream-service-time.
async fn decomposed_gateway_p50(filter_ms: f64, results: &std::path::Path) -> (f64, u64) {
    let t = target::start(TargetConfig {
        faults: Faults {
            upstream_service_time: Some(Duration::from_millis(5)),
            ..Faults::default()
        },
        ..target_with(filter_ms)
    })
    .await
    .unwrap();
    let mut p = profile(&t.url(), &[fixture("known")], results);
    p.rate = Some(200.0);
    p.duration = Some(Duration::from_secs(2));
    p.benign_share = Some(1.0);
    let outcome = run_profile(&p).await;
    let arm = ArmData::from_runs("waf", &[outcome.dir]).unwrap();
    let d = overhead(None, &arm, 1).decomposition.expect("header seen");
    t.shutdown().await;
    (ms(d.gateway.p50), d.upstream.p50)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_header_decomposition_recovers_the_filter_delay() {
    let _guard = TIMING.lock().await;
    let results = tempfile::tempdir().unwrap();
    measure_up_to(3, |attempt| {
        let dir = results.path().join(format!("attempt-{attempt}"));
        async move {
            // The floor: the same set-up without a filter delay (loopback + both HTTP stacks).
            let (floor, _) = decomposed_gateway_p50(0.0, &dir).await;
            let (with_filter, upstream_p50) = decomposed_gateway_p50(3.0, &dir).await;
            eprintln!(
                "gateway+filter p50: {with_filter} ms with a 3 ms filter, {floor} ms without"
            );
            // 5 ms from the header, as the histogram holds it (3 significant digits).
            ensure!(
                (5000..=5003).contains(&upstream_p50),
                "upstream {upstream_p50} µs"
            );
            ensure!(
                (with_filter - floor - 3.0).abs() <= 0.3,
                "recovered filter delay {} ms",
                with_filter - floor
            );
            // At least the filter's 3 ms. No absolute upper bound: the floor (loopback and
            // both HTTP stacks) measured 0.68–1.2 ms on the same VM an hour apart, which put
            // a correct 3.24 ms recovery at 4.4 ms; the recovered delay above is the answer.
            ensure!(with_filter >= 3.0, "gateway+filter p50 {with_filter} ms");
            Ok(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_search_finds_a_known_limit_within_ten_percent() {
    let _guard = TIMING.lock().await;
    // 2 workers × 5 ms service time: at most 400 req/s.
    let t = target::start(TargetConfig {
        faults: Faults {
            capacity: Some(Capacity {
                workers: 2,
                service_time: Duration::from_millis(5),
            }),
            ..Faults::default()
        },
        ..target_with(0.0)
    })
    .await
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let url = t.url();
    measure_up_to(2, |attempt| {
        let mut p = profile(
            &url,
            &[fixture("known")],
            &results.path().join(attempt.to_string()),
        );
        p.benign_share = Some(0.5);
        p.connections = 128;
        async move {
            let mut options = CapacityOptions::new(Slo::parse("p99<100ms,errors<1%").unwrap());
            options.start_rate = 50.0;
            options.step = Duration::from_secs(2);
            options.budget = Duration::from_secs(60);
            let out = p.results_dir.clone();
            let report = search(&p, &options, &out, true, CancellationToken::new())
                .await
                .unwrap();
            eprint!("{}", wafload::analysis::capacity::render(&report));
            let found = report.sustainable_rate.unwrap_or(0.0);
            ensure!(
                (360.0..=440.0).contains(&found),
                "sustainable {found} req/s, true limit 400"
            );
            ensure!(
                report.elapsed_s < 60.0 && !report.budget_exhausted,
                "search took {} s",
                report.elapsed_s
            );
            Ok(())
        }
    })
    .await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_report_shows_where_the_waf_fails_open() {
    let _guard = TIMING.lock().await;
    let t = target::start(TargetConfig {
        faults: Faults {
            fail_open_above: Some(600.0),
            ..Faults::default()
        },
        ..target_with(0.0)
    })
    .await
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut p = profile(&t.url(), &[fixture("known")], results.path());
    p.benign_share = Some(0.5);
    let mut options = CapacityOptions::new(Slo::parse("p99<100ms").unwrap());
    options.start_rate = 200.0;
    options.max_rate = 1000.0;
    options.step = Duration::from_secs(2);
    let report = search(&p, &options, results.path(), true, CancellationToken::new())
        .await
        .unwrap();
    eprint!("{}", wafload::analysis::capacity::render(&report));
    let rates: Vec<f64> = report.steps.iter().map(|s| s.rate).collect();
    assert_eq!(rates, vec![200.0, 400.0, 800.0]);
    let finding = report.fail_open.expect("fail-open reported");
    assert!(finding.contains("at 800 req/s"), "{finding}");
    // Below the threshold every marked attack is blocked (8 of 22 resolve as blocked).
    let d200 = report.steps[0].detection.unwrap();
    assert!((d200 - 8.0 / 22.0).abs() < 0.02, "{d200}");
    t.shutdown().await;
}

/// Attacks sit at the very end of the sweep's padded bodies, so the target blocks them only
/// when it received every byte: over HTTP/1.1 and HTTP/2 (flow control with 1 MiB bodies
/// beyond the 64 KiB default window) detection is exactly 100 % and false positives 0 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_sweep_delivers_whole_bodies_over_h1_and_h2() {
    use wafload::analysis::sweep::sweep;
    use wafload::profile::HttpVersion;
    let _guard = TIMING.lock().await;
    let tls = target::start(TargetConfig {
        tls: true,
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let sizes = [0, 64 * 1024, 1 << 20];
    for http in [HttpVersion::H1, HttpVersion::H2] {
        let mut p = profile(&tls.url(), &[], results.path());
        p.target.insecure = true;
        p.target.http = http;
        p.requests = Some(12);
        p.rate = Some(100.0);
        let out = results.path().join(format!("{http:?}"));
        let swept = sweep(
            &[("arm".to_string(), p)],
            &sizes,
            &out,
            false,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(swept.len(), 3);
        for size in &swept {
            let arm = &size.arms[0];
            assert_eq!(
                (arm.sent, arm.errors, arm.detection, arm.false_positives),
                (12, 0, Some(1.0), Some(0.0)),
                "{http:?} body {}",
                size.label
            );
        }
    }
    tls.shutdown().await;
}
