//! Per-request costs of the pipeline outside the network: building the plan from a corpus,
//! mapping slots to requests, classifying an outcome, and recording a completion (HDR
//! histograms + a zstd-compressed JSON record). Run: `cargo bench --bench pipeline`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wafload::classify::{Class, ClassifyRules, Flags};
use wafload::corpus::load_corpus;
use wafload::plan::Plan;
use wafload::profile::Profile;
use wafload::record::{RecordWriter, Recorder};
use wafload::schedule::{Completion, Progress};
use wafload::transport::Outcome;

fn profile() -> Profile {
    let mut p = Profile {
        corpus: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("payloads")],
        benign_share: Some(0.5),
        ..Profile::default()
    };
    p.target.url = "http://127.0.0.1:8080/".into();
    p
}

fn bench_plan(c: &mut Criterion) {
    let p = profile();
    let corpus = load_corpus(&p.corpus).unwrap();
    let n = corpus.request_count() as u64;
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(n));
    group.bench_function("build_payloads_corpus", |b| {
        b.iter(|| black_box(Plan::build(&p, &corpus).unwrap()))
    });
    let plan = Plan::build(&p, &corpus).unwrap();
    group.throughput(Throughput::Elements(1));
    group.bench_function("request_for_slot", |b| {
        let mut slot = 0u64;
        b.iter(|| {
            slot += 1;
            black_box(plan.request_for_slot(slot));
        })
    });
    group.finish();
}

fn bench_classify(c: &mut Criterion) {
    let classifier = ClassifyRules {
        block_body: Some("(?i)request blocked".into()),
        ..ClassifyRules::default()
    }
    .compile()
    .unwrap();
    let outcome = Outcome {
        status: Some(200),
        body_prefix: bytes::Bytes::from_static(b"ok wl0000000000-123"),
        ..Outcome::default()
    };
    c.bench_function("classify/pass_with_body_regex", |b| {
        b.iter(|| black_box(classifier.classify(black_box(&outcome))))
    });
}

fn bench_record(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut group = c.benchmark_group("record");
    // Each iteration records 1000 completions.
    group.throughput(Throughput::Elements(1000));
    group.bench_function("completion_with_zstd_record", |b| {
        b.iter_batched_ref(
            || {
                Recorder::new(
                    start,
                    2000,
                    Some(RecordWriter::create(dir.path()).unwrap()),
                    Arc::new(Progress::default()),
                )
            },
            |recorder| {
                for i in 0..1000u64 {
                    let intended = start + Duration::from_micros(i * 50);
                    let c = Completion {
                        slot: i,
                        source: (i % 2000) as u32,
                        intended,
                        sent: intended + Duration::from_micros(20),
                        done: intended + Duration::from_micros(800 + i % 300),
                        class: if i % 3 == 0 {
                            Class::Blocked
                        } else {
                            Class::Passed
                        },
                        flags: Flags::default(),
                        status: Some(if i % 3 == 0 { 403 } else { 200 }),
                        error: None,
                        upstream_us: None,
                        body_len: 20,
                        ext_proc: None,
                    };
                    recorder.record(&c);
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_plan, bench_classify, bench_record);
criterion_main!(benches);
