//! `wafload demo --ext-proc`: the seed's topology on loopback — wafload → gateway EMULATION →
//! calibration ext_proc processor (the WAF) → calibration target as the application — and
//! the demo benchmark through it.

use super::demo::{demo_options, demo_profile, finish, DemoArgs};
use crate::error::Error;
use crate::run::run;
use crate::target::extproc::{start_ext_proc, ExtProcTargetConfig};
use crate::target::gateway::{start_gateway, GatewayConfig};
use crate::target::{self, Delay, TargetConfig};
use crate::transport::extproc::ExtProcSettings;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Processor delays the demo uses, so the latency split is visible.
const DEMO_HEADERS_DELAY: Duration = Duration::from_millis(1);
const DEMO_BODY_DELAY: Duration = Duration::from_millis(1);

pub async fn execute(args: DemoArgs) -> Result<u8, Error> {
    let app_delay = args.target_delay.unwrap_or(Duration::from_millis(2));
    let app = target::start(TargetConfig {
        markers: vec![],
        delay: Delay::Fixed(app_delay),
        ..TargetConfig::default()
    })
    .await
    .map_err(|e| Error::Other(e.to_string()))?;
    let processor = start_ext_proc(ExtProcTargetConfig {
        request_headers_delay: DEMO_HEADERS_DELAY,
        request_body_delay: DEMO_BODY_DELAY,
        ..ExtProcTargetConfig::default()
    })
    .await
    .map_err(|e| Error::Other(e.to_string()))?;
    let gateway = start_gateway(GatewayConfig {
        ext_proc: processor.url(),
        upstream: format!("http://{}", app.addr),
        settings: ExtProcSettings {
            request_body_mode: args.body_mode,
            response_body_mode: args.body_mode,
            ..ExtProcSettings::default()
        },
        ..GatewayConfig::default()
    })
    .await
    .map_err(|e| Error::Other(e.to_string()))?;
    let temp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let profile = demo_profile(gateway.url(), temp.path(), &args)?;
    if !args.quiet && !args.json {
        eprintln!(
            "topology on loopback: wafload → gateway EMULATION {} (not a production gateway; {} body) → ext_proc WAF {} (calibration processor: blocks attack markers, {:?} per headers / {:?} per body message) → upstream {} ({:?})",
            gateway.url(),
            args.body_mode.as_str(),
            processor.url(),
            DEMO_HEADERS_DELAY,
            DEMO_BODY_DELAY,
            app.url(),
            app_delay
        );
    }
    let (cancel, signal) = super::cancel_on_signals();
    let result = run(&profile, &demo_options(&args), cancel).await;
    gateway.shutdown().await;
    processor.shutdown().await;
    app.shutdown().await;
    finish(
        result,
        &args,
        signal.load(Ordering::SeqCst),
        "'gateway' above = total − x-envoy-upstream-service-time: the processor's time plus the emulated hop.\nnext: measure the processor alone with `wafload run --ext-proc grpc://HOST:PORT --body-mode streamed`",
    )
}
