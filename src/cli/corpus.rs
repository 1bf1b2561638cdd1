//! `wafload corpus stats|list`: what a corpus holds and what it turns into.

use crate::corpus::load_corpus;
use crate::error::Error;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Per set: files, payloads, requests (payloads × encoders × placeholders),
    /// unsupported and unsendable requests.
    Stats {
        /// Corpus root(s): folders of set folders.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every request the corpus builds, one line each (set, case, placeholder, encoder,
    /// method, target).
    List {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Base path of the target URL the requests are built for.
        #[arg(long, default_value = "/")]
        base_path: String,
        /// Seed for random parameter names.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON lines with headers and bodies.
        #[arg(long)]
        json: bool,
    },
}

pub fn execute(cmd: CorpusCommand) -> Result<u8, Error> {
    match cmd {
        CorpusCommand::Stats { dirs, json } => {
            let corpus = load_corpus(&dirs)?;
            let stats = corpus.stats();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&stats)
                        .map_err(|e| Error::Other(e.to_string()))?
                );
            } else {
                print!("{stats}");
            }
            Ok(0)
        }
        CorpusCommand::List {
            dirs,
            base_path,
            seed,
            json,
        } => {
            let corpus = load_corpus(&dirs)?;
            for r in corpus.expand(&base_path, seed) {
                if json {
                    let built = match &r.built {
                        Ok(spec) => serde_json::json!({
                            "method": spec.method,
                            "target": spec.target,
                            "headers": spec.headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect::<Vec<_>>(),
                            "body": String::from_utf8_lossy(&spec.body),
                        }),
                        Err(e) => serde_json::json!({ "not_built": format!("{e:?}") }),
                    };
                    println!(
                        "{}",
                        serde_json::json!({
                            "set": r.set, "case": r.case, "placeholder": r.placeholder,
                            "encoder": r.encoder, "payload_index": r.payload_index,
                            "benign": r.benign, "request": built,
                        })
                    );
                } else {
                    let what = match &r.built {
                        Ok(spec) => format!("{} {}", spec.method, truncate(&spec.target, 100)),
                        Err(e) => format!("({e:?})"),
                    };
                    println!(
                        "{}/{}\t{}\t{}\t#{}\t{}",
                        r.set, r.case, r.placeholder, r.encoder, r.payload_index, what
                    );
                }
            }
            Ok(0)
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
