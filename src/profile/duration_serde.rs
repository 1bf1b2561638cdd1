//! Serde helpers for human durations ("10s", "250ms") and checked numbers, so that a bad
//! value is rejected by the deserializer and the error carries the YAML position.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parses "10s", "1m30s", "250ms", or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let duration = match t.parse::<f64>() {
        Ok(secs) => seconds(secs).map_err(|why| format!("{text:?} {why}"))?,
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| format!("{text:?} is not a duration like 10s, 500ms or 2m ({e})"))?,
    };
    if duration > MAX_DURATION {
        return Err(format!("{text:?} {TOO_LONG}"));
    }
    Ok(duration)
}

/// Longest duration accepted anywhere (run length, stage, timeout). Far beyond any real
/// use, and far below what `Instant + Duration` can hold, so time arithmetic never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

const TOO_LONG: &str = "is longer than 100 years";

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Num(f64),
    Text(String),
}

/// Marks a custom error with the field it belongs to, so `profile::yaml_error` can point
/// at the field's own line (serde_yaml_ng reports custom errors at the enclosing mapping).
pub fn field_error<E: serde::de::Error>(field: &str, message: impl std::fmt::Display) -> E {
    E::custom(format!("{FIELD_MARK}{field}{FIELD_MARK}{message}"))
}

/// Separator around the field name inside custom error messages.
pub const FIELD_MARK: char = '\u{1}';

/// A number of seconds as a duration; negative, NaN and too large values are errors
/// (`Duration::from_secs_f64` would panic on the largest).
fn seconds(secs: f64) -> Result<Duration, String> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err("is not a valid duration".to_string());
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(TOO_LONG.to_string()),
    }
}

fn raw_to_duration<E: serde::de::Error>(field: &str, raw: Raw) -> Result<Duration, E> {
    match raw {
        Raw::Num(n) => seconds(n).map_err(|why| {
            let shown = if n.abs() < 1e15 {
                n.to_string()
            } else {
                format!("{n:e}")
            };
            field_error(field, format!("{shown} {why}"))
        }),
        Raw::Text(t) => parse_duration(&t).map_err(|e| field_error(field, e)),
    }
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn stage_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    raw_to_duration("duration", Raw::deserialize(d)?)
}

pub fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    raw_to_duration("timeout", Raw::deserialize(d)?)
}

pub mod opt {
    use super::*;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Some(raw_to_duration("duration", Raw::deserialize(d)?)?))
    }
}

fn check_rate<E: serde::de::Error>(field: &str, v: f64) -> Result<f64, E> {
    if v.is_finite() && v > 0.0 && v <= 10_000_000.0 {
        Ok(v)
    } else {
        Err(field_error(
            field,
            format!("must be a positive number of requests per second (at most 1e7), got {v}"),
        ))
    }
}

pub fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    check_rate("rate", f64::deserialize(d)?)
}

pub fn opt_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Some(check_rate("rate", f64::deserialize(d)?)?))
}

pub fn opt_to_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Some(check_rate("to", f64::deserialize(d)?)?))
}

pub fn opt_share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&v) {
        Ok(Some(v))
    } else {
        Err(field_error(
            "benign_share",
            format!("must be between 0 and 1 (0.8 = 80 % benign), got {v}"),
        ))
    }
}
