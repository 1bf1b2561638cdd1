//! Kubernetes as the distributed engine: an Indexed Job of N pods, each running one shard
//! (`wafload run --shard $JOB_COMPLETION_INDEX/N`) from a common start time, with the
//! profile and corpus in a ConfigMap. Manifests are built from typed API objects
//! (k8s-openapi), never from string templates. No coordinator of our own.

use crate::error::Error;
use crate::profile::Profile;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the ConfigMap is mounted in each pod.
pub const CONFIG_DIR: &str = "/etc/wafload";
/// Where each pod writes its shard's results (an emptyDir).
pub const RESULTS_DIR: &str = "/results";
/// Line printed before the base64 tarball of a shard's results in the pod log.
pub const RESULTS_MARKER: &str = "=== wafload results ===";
/// ConfigMaps are stored in etcd: 1 MiB at most.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024 - 16 * 1024;

#[derive(Clone, Debug)]
pub struct K8sOptions {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub shards: u32,
    pub start_at: SystemTime,
    pub cpu: String,
    pub memory: String,
}

/// The two objects to apply: the ConfigMap first, then the Job.
pub struct Manifests {
    pub config_map: ConfigMap,
    pub job: Job,
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "wafload".to_string()),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

/// Collects corpus files (root i → `corpus/<i>/<relative path>`) with ConfigMap-safe keys.
fn corpus_files(roots: &[PathBuf]) -> Result<Vec<(String, String, String)>, Error> {
    let mut out = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .replace('\\', "/");
                    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                    let key: String = format!("c{i}-{rel}")
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    out.push((key, format!("corpus/{i}/{rel}"), text));
                }
            }
        }
    }
    Ok(out)
}

/// Builds the ConfigMap and the Indexed Job for `profile`.
pub fn manifests(profile: &Profile, options: &K8sOptions) -> Result<Manifests, Error> {
    if options.shards == 0 {
        return Err(Error::flag("--shards", "must be at least 1"));
    }
    let files = corpus_files(&profile.corpus)?;
    // The profile as the pods see it: corpus inside the ConfigMap mount, results in the emptyDir.
    let mut pod_profile = profile.clone();
    pod_profile.corpus = (0..profile.corpus.len())
        .map(|i| Path::new(CONFIG_DIR).join("corpus").join(i.to_string()))
        .collect();
    pod_profile.results_dir = PathBuf::from(RESULTS_DIR);
    let profile_yaml =
        serde_yaml_ng::to_string(&pod_profile).map_err(|e| Error::Other(e.to_string()))?;

    let mut data = BTreeMap::new();
    let mut items = vec![KeyToPath {
        key: "profile.yaml".into(),
        path: "profile.yaml".into(),
        ..Default::default()
    }];
    data.insert("profile.yaml".to_string(), profile_yaml);
    for (key, path, text) in files {
        items.push(KeyToPath {
            key: key.clone(),
            path,
            ..Default::default()
        });
        data.insert(key, text);
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > CONFIGMAP_LIMIT {
        return Err(Error::flag(
            "--profile",
            format!("profile + corpus are {} KiB, more than a ConfigMap holds (1 MiB): build the corpus into the image instead", size / 1024),
        ));
    }
    let config_name = format!("{}-config", options.name);
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_name.clone()),
            namespace: Some(options.namespace.clone()),
            labels: Some(labels(&options.name)),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };

    let start = chrono::DateTime::<chrono::Utc>::from(options.start_at)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let n = options.shards;
    let script = format!(
        "set -e\n\
         out={RESULTS_DIR}/shard-$JOB_COMPLETION_INDEX\n\
         wafload run --profile {CONFIG_DIR}/profile.yaml --shard $JOB_COMPLETION_INDEX/{n} --start-at {start} --quiet --out \"$out\" >/dev/null\n\
         echo '{RESULTS_MARKER}'\n\
         tar -C {RESULTS_DIR} -cz \"shard-$JOB_COMPLETION_INDEX\" | base64 -w0\n\
         echo\n"
    );
    let resources: BTreeMap<String, Quantity> = BTreeMap::from([
        ("cpu".to_string(), Quantity(options.cpu.clone())),
        ("memory".to_string(), Quantity(options.memory.clone())),
    ]);
    let container = Container {
        name: "wafload".into(),
        image: Some(options.image.clone()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "results".into(),
                mount_path: RESULTS_DIR.into(),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let job = Job {
        metadata: ObjectMeta {
            name: Some(options.name.clone()),
            namespace: Some(options.namespace.clone()),
            labels: Some(labels(&options.name)),
            annotations: Some(BTreeMap::from([(
                "wafload.dev/start-at".to_string(),
                start.clone(),
            )])),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(n as i32),
            parallelism: Some(n as i32),
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&options.name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(10001),
                        ..Default::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: config_name,
                                items: Some(items),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "results".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Manifests { config_map, job })
}

impl Manifests {
    /// Both objects as one multi-document YAML stream (apiVersion/kind included).
    pub fn to_yaml(&self) -> Result<String, Error> {
        let cm = to_value(&self.config_map, "v1", "ConfigMap")?;
        let job = to_value(&self.job, "batch/v1", "Job")?;
        let mut out = String::from(
            "# Generated by `wafload k8s`. Apply with: kubectl apply -f <this file>\n",
        );
        for v in [cm, job] {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(&v).map_err(|e| Error::Other(e.to_string()))?);
        }
        Ok(out)
    }
}

fn to_value<T: serde::Serialize>(
    obj: &T,
    api_version: &str,
    kind: &str,
) -> Result<serde_json::Value, Error> {
    // k8s-openapi's Serialize already writes apiVersion and kind for resources.
    let mut v = serde_json::to_value(obj).map_err(|e| Error::Other(e.to_string()))?;
    if let Some(map) = v.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| api_version.into());
        map.entry("kind").or_insert_with(|| kind.into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> K8sOptions {
        K8sOptions {
            name: "wafload".into(),
            namespace: "load".into(),
            image: "registry.example/wafload:0.1".into(),
            shards: 4,
            start_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000),
            cpu: "2".into(),
            memory: "512Mi".into(),
        }
    }

    fn profile() -> Profile {
        let mut p = Profile {
            corpus: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("payloads")],
            benign_share: Some(0.8),
            rate: Some(4000.0),
            duration: Some(std::time::Duration::from_secs(60)),
            ..Profile::default()
        };
        p.target.url = "https://gateway.example/".into();
        p
    }

    #[test]
    fn manifests_round_trip_into_typed_objects() {
        let yaml = manifests(&profile(), &options())
            .unwrap()
            .to_yaml()
            .unwrap();
        let docs: Vec<&str> = yaml.split("\n---\n").skip(1).collect();
        assert_eq!(docs.len(), 2, "{yaml}");
        let cm: ConfigMap = serde_yaml_ng::from_str(docs[0]).unwrap();
        let job: Job = serde_yaml_ng::from_str(docs[1]).unwrap();
        assert!(docs[0].contains("kind: ConfigMap") && docs[1].contains("kind: Job"));
        assert!(docs[1].contains("apiVersion: batch/v1"));

        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(spec.completions, Some(4));
        assert_eq!(spec.parallelism, Some(4));
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.example/wafload:0.1"));
        let script = c.command.as_ref().unwrap().join(" ");
        assert!(
            script.contains("--shard $JOB_COMPLETION_INDEX/4"),
            "{script}"
        );
        assert!(script.contains("--start-at 2026-11-18T"), "{script}");
        assert_eq!(job.metadata.namespace.as_deref(), Some("load"));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"].0, "512Mi");

        // The profile inside the ConfigMap parses and points at the mounted corpus.
        let data = cm.data.as_ref().unwrap();
        let p = Profile::parse(&data["profile.yaml"], Path::new("profile.yaml")).unwrap();
        assert_eq!(p.corpus, vec![PathBuf::from("/etc/wafload/corpus/0")]);
        assert_eq!(p.rate, Some(4000.0));
        // Every corpus file is in the ConfigMap and mounted at its relative path.
        let items = pod.volumes.as_ref().unwrap()[0]
            .config_map
            .as_ref()
            .unwrap()
            .items
            .clone()
            .unwrap();
        assert!(items
            .iter()
            .any(|i| i.path == "corpus/0/wafload-attacks/sqli.yml"));
        assert_eq!(items.len(), data.len());
    }
}
