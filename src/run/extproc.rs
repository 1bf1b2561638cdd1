//! A run in direct ext_proc mode: the planned requests go to an Envoy external processor as
//! `Process` streams instead of to an HTTP gateway. Same plan, scheduler, classifier and
//! results as an HTTP run; the summary gains an `ext_proc` section.

use super::{execute, PreparedRun, RunOptions, RunOutcome};
use crate::error::Error;
use crate::profile::Profile;
use crate::results::{write_atomic, ExtProcSummary, SUMMARY_FILE};
use crate::transport::extproc::{
    DirectOptions, ExtProcSettings, ExtProcTransport, ProcessorEndpoint, ProcessorTls,
};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where the processor is and how to talk to it.
#[derive(Clone, Debug)]
pub struct ExtProcTarget {
    /// `grpc://host:port` (h2c) or `grpcs://host:port` (TLS).
    pub url: String,
    /// HTTP/2 connections to the processor (Envoy keeps about one per worker thread).
    pub connections: usize,
    pub tls: ProcessorTls,
    pub settings: ExtProcSettings,
}

/// Runs a profile against an external processor directly.
pub async fn run_ext_proc(
    profile: &Profile,
    options: &RunOptions,
    target: &ExtProcTarget,
    cancel: CancellationToken,
) -> Result<RunOutcome, Error> {
    let prepared = PreparedRun::new(profile, options)?;
    let endpoint = ProcessorEndpoint::resolve(&target.url, &target.tls, "--ext-proc").await?;
    let tls = endpoint.tls_enabled;
    let app: http::Uri = profile
        .target
        .url
        .parse()
        .map_err(|e| Error::flag("--target", format!("{e}")))?;
    let direct = DirectOptions {
        authority: app
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "localhost".into()),
        scheme: app.scheme_str().unwrap_or("http").to_string(),
        request_id_header: profile.request_id_header.clone(),
        timeout: profile.timeout,
        in_flight: profile.connections,
    };
    let transport = ExtProcTransport::connect(
        endpoint,
        target.connections,
        target.settings.clone(),
        direct,
    )
    .await?;
    let protocol = format!(
        "ext_proc over {}, request body {}",
        if tls { "gRPC+TLS" } else { "gRPC h2c" },
        target.settings.request_body_mode.as_str()
    );
    let mut outcome = execute(prepared, Arc::new(transport), &protocol, cancel).await?;
    let mut settings = serde_json::to_value(&target.settings).unwrap_or_default();
    if let Some(map) = settings.as_object_mut() {
        map.insert("processor".into(), target.url.clone().into());
        map.insert("connections".into(), target.connections.into());
        map.insert("application_url".into(), profile.target.url.clone().into());
    }
    let summary = &mut outcome.summary;
    summary
        .ext_proc
        .get_or_insert_with(ExtProcSummary::default)
        .settings = settings;
    summary.run.target = target.url.clone();
    let mut bytes = serde_json::to_vec_pretty(summary).map_err(|e| Error::Other(e.to_string()))?;
    bytes.push(b'\n');
    write_atomic(&outcome.dir.join(SUMMARY_FILE), &bytes)?;
    Ok(outcome)
}
