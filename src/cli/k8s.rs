//! `wafload k8s`: Kubernetes manifests for a sharded run (ConfigMap + Indexed Job).

use super::run::parse_start_at;
use crate::error::Error;
use crate::k8s::{manifests, K8sOptions};
use crate::profile::{parse_duration, Profile};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
#[command(
    after_help = "Writes a ConfigMap (profile + corpus) and an Indexed Job whose pod I runs \
`wafload run --shard I/N` from a common start time. See README \"Running on Kubernetes\" for \
collecting the shards' results and merging them.\n\
Example: wafload k8s --profile p.yaml --shards 8 --namespace load --image registry.example/wafload:0.1 -o job.yaml"
)]
pub struct K8sArgs {
    #[arg(short, long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Number of pods (shards); each sends rate / N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub shards: u32,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Container image with the wafload binary (see the Dockerfile).
    #[arg(long, default_value = "wafload:latest")]
    pub image: String,
    /// Name of the Job (and prefix of the ConfigMap).
    #[arg(long, default_value = "wafload")]
    pub name: String,
    /// Start this long after generating the manifests (time to apply them and pull images).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub start_in: Duration,
    /// Start at this wall-clock time instead (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<SystemTime>,
    /// CPU request and limit per pod.
    #[arg(long, default_value = "2")]
    pub cpu: String,
    /// Memory request and limit per pod.
    #[arg(long, default_value = "512Mi")]
    pub memory: String,
    /// Write the YAML here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn execute(args: K8sArgs) -> Result<u8, Error> {
    let profile = Profile::load(&args.profile)?;
    profile.validate_runnable(&args.profile.display().to_string())?;
    let options = K8sOptions {
        name: args.name,
        namespace: args.namespace,
        image: args.image,
        shards: args.shards,
        start_at: args
            .start_at
            .unwrap_or_else(|| SystemTime::now() + args.start_in),
        cpu: args.cpu,
        memory: args.memory,
    };
    let yaml = manifests(&profile, &options)?.to_yaml()?;
    match &args.output {
        Some(path) => {
            crate::results::write_atomic(path, yaml.as_bytes())?;
            eprintln!(
                "wrote {} — apply it before {} (the shards' common start)",
                path.display(),
                chrono::DateTime::<chrono::Local>::from(options.start_at).format("%H:%M:%S")
            );
        }
        None => print!("{yaml}"),
    }
    Ok(0)
}
