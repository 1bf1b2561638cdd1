//! A schema reduced to what request building needs (type, bounds, enums, examples, fields),
//! with `$ref`s resolved; and the valid example values wafload fills requests with.

use super::{Resolver, MAX_DEPTH};
use openapiv3::{ReferenceOr, Schema, SchemaKind, StringFormat, Type, VariantOrUnknownOrEmpty};
use serde_json::Value;

/// The type of a value and its constraints.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    String {
        format: Option<String>,
        enumeration: Vec<String>,
        min_length: Option<usize>,
        max_length: Option<usize>,
    },
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
        enumeration: Vec<i64>,
    },
    Number {
        minimum: Option<f64>,
        maximum: Option<f64>,
        enumeration: Vec<f64>,
    },
    Boolean,
    Array {
        items: Box<Shape>,
        min_items: usize,
    },
    Object {
        properties: Vec<(String, Shape)>,
    },
    /// No type given: any value is valid.
    Any,
}

/// A resolved schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub kind: Kind,
    /// The document's example, used when it fits the type.
    pub example: Option<Value>,
    /// readOnly properties are not sent in requests.
    pub read_only: bool,
}

impl Shape {
    pub fn any() -> Shape {
        Shape {
            kind: Kind::Any,
            example: None,
            read_only: false,
        }
    }

    pub fn with_example(mut self, example: Value) -> Shape {
        self.example = Some(example);
        self
    }

    /// A value valid for this shape: the document's example when it fits, else the first
    /// enum value, else a value built from the type and bounds.
    pub fn example(&self) -> Value {
        let fits = |v: &Value| self.accepts(v);
        if let Some(e) = self.example.as_ref().filter(|e| fits(e)) {
            if !matches!(self.kind, Kind::Object { .. } | Kind::Array { .. }) {
                return e.clone();
            }
        }
        match &self.kind {
            Kind::String {
                format,
                enumeration,
                min_length,
                max_length,
            } => {
                if let Some(first) = enumeration.first() {
                    return Value::String(first.clone());
                }
                let mut s = match format.as_deref() {
                    Some("date") => "2024-01-01",
                    Some("date-time") => "2024-01-01T00:00:00Z",
                    Some("email") => "user@example.com",
                    Some("uuid") => "00000000-0000-4000-8000-000000000000",
                    Some("byte") => "d2FmbG9hZA==",
                    Some("uri") | Some("url") => "https://example.com/",
                    Some("ipv4") => "192.0.2.1",
                    Some("ipv6") => "2001:db8::1",
                    Some("hostname") => "example.com",
                    _ => "wafload",
                }
                .to_string();
                while s.len() < min_length.unwrap_or(0) {
                    s.push('x');
                }
                if let Some(max) = max_length {
                    s.truncate(*max);
                }
                Value::String(s)
            }
            Kind::Integer {
                minimum,
                maximum,
                enumeration,
            } => {
                if let Some(first) = enumeration.first() {
                    return Value::from(*first);
                }
                let mut v = minimum.unwrap_or(1).max(minimum.unwrap_or(i64::MIN));
                if let Some(max) = maximum {
                    v = v.min(*max);
                }
                Value::from(v)
            }
            Kind::Number {
                minimum,
                maximum,
                enumeration,
            } => {
                if let Some(first) = enumeration.first() {
                    return serde_json::Number::from_f64(*first)
                        .map(Value::Number)
                        .unwrap_or(Value::from(1));
                }
                let mut v = minimum.unwrap_or(1.0);
                if let Some(max) = maximum {
                    v = v.min(*max);
                }
                serde_json::Number::from_f64(v)
                    .map(Value::Number)
                    .unwrap_or(Value::from(1))
            }
            Kind::Boolean => Value::Bool(true),
            Kind::Array { items, min_items } => {
                Value::Array((0..(*min_items).max(1)).map(|_| items.example()).collect())
            }
            Kind::Object { properties } => Value::Object(
                properties
                    .iter()
                    .filter(|(_, s)| !s.read_only)
                    .map(|(k, s)| (k.clone(), s.example()))
                    .collect(),
            ),
            Kind::Any => self
                .example
                .clone()
                .unwrap_or_else(|| Value::String("wafload".into())),
        }
    }

    /// The example as parameter text (`5`, `available`, arrays as their first item).
    pub fn example_text(&self) -> String {
        match self.example() {
            Value::String(s) => s,
            Value::Array(items) => items
                .first()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default(),
            other => other.to_string(),
        }
    }

    /// Whether `v` is valid for this shape (type, enum, bounds; not string patterns).
    pub fn accepts(&self, v: &Value) -> bool {
        match (&self.kind, v) {
            (
                Kind::String {
                    enumeration,
                    min_length,
                    max_length,
                    ..
                },
                Value::String(s),
            ) => {
                (enumeration.is_empty() || enumeration.contains(s))
                    && s.chars().count() >= min_length.unwrap_or(0)
                    && max_length.is_none_or(|m| s.chars().count() <= m)
            }
            (
                Kind::Integer {
                    minimum,
                    maximum,
                    enumeration,
                },
                Value::Number(n),
            ) => n.as_i64().is_some_and(|i| {
                (enumeration.is_empty() || enumeration.contains(&i))
                    && minimum.is_none_or(|m| i >= m)
                    && maximum.is_none_or(|m| i <= m)
            }),
            (
                Kind::Number {
                    minimum, maximum, ..
                },
                Value::Number(n),
            ) => n
                .as_f64()
                .is_some_and(|f| minimum.is_none_or(|m| f >= m) && maximum.is_none_or(|m| f <= m)),
            (Kind::Boolean, Value::Bool(_)) => true,
            (Kind::Array { items, min_items }, Value::Array(a)) => {
                a.len() >= *min_items && a.iter().all(|i| items.accepts(i))
            }
            (Kind::Object { .. }, Value::Object(_)) => true,
            (Kind::Any, _) => true,
            _ => false,
        }
    }

    /// JSON pointers (inside a value of this shape) of every field that holds a string, in
    /// declaration order; "" when the value itself is a string. Arrays contribute `/0`.
    pub fn string_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_strings(String::new(), &mut out);
        out
    }

    fn collect_strings(&self, at: String, out: &mut Vec<String>) {
        match &self.kind {
            Kind::String { enumeration, .. } if enumeration.is_empty() => out.push(at),
            // Enumerated strings take the payload too: that is exactly what a WAF must catch.
            Kind::String { .. } | Kind::Any => out.push(at),
            Kind::Array { items, .. } => items.collect_strings(format!("{at}/0"), out),
            Kind::Object { properties } => {
                for (name, s) in properties.iter().filter(|(_, s)| !s.read_only) {
                    s.collect_strings(format!("{at}/{}", super::escape_pointer(name)), out);
                }
            }
            _ => {}
        }
    }
}

fn format_name<T: Copy>(
    f: &VariantOrUnknownOrEmpty<T>,
    name: impl Fn(T) -> &'static str,
) -> Option<String> {
    match f {
        VariantOrUnknownOrEmpty::Item(v) => Some(name(*v).to_string()),
        VariantOrUnknownOrEmpty::Unknown(s) => Some(s.clone()),
        VariantOrUnknownOrEmpty::Empty => None,
    }
}

fn boxed(
    r: &Resolver<'_>,
    s: &ReferenceOr<Box<Schema>>,
    pointer: &str,
    depth: usize,
) -> Result<Shape, String> {
    match s {
        ReferenceOr::Item(b) => from_schema(r, b, pointer, depth + 1),
        ReferenceOr::Reference { reference } => r.schema_ref(reference, depth + 1),
    }
}

/// Reduces a schema; `pointer` names it in errors.
pub(super) fn from_schema(
    r: &Resolver<'_>,
    schema: &Schema,
    pointer: &str,
    depth: usize,
) -> Result<Shape, String> {
    let data = &schema.schema_data;
    let mut shape = Shape {
        kind: Kind::Any,
        example: data.example.clone().or_else(|| data.default.clone()),
        read_only: data.read_only,
    };
    if depth > MAX_DEPTH {
        shape.kind = Kind::Object {
            properties: Vec::new(),
        };
        return Ok(shape);
    }
    shape.kind = match &schema.schema_kind {
        SchemaKind::Type(Type::String(s)) => Kind::String {
            format: format_name(&s.format, |f| match f {
                StringFormat::Date => "date",
                StringFormat::DateTime => "date-time",
                StringFormat::Password => "password",
                StringFormat::Byte => "byte",
                StringFormat::Binary => "binary",
            }),
            enumeration: s.enumeration.iter().flatten().cloned().collect(),
            min_length: s.min_length,
            max_length: s.max_length,
        },
        SchemaKind::Type(Type::Integer(i)) => Kind::Integer {
            minimum: i
                .minimum
                .map(|m| if i.exclusive_minimum { m + 1 } else { m }),
            maximum: i
                .maximum
                .map(|m| if i.exclusive_maximum { m - 1 } else { m }),
            enumeration: i.enumeration.iter().flatten().copied().collect(),
        },
        SchemaKind::Type(Type::Number(n)) => Kind::Number {
            minimum: n.minimum,
            maximum: n.maximum,
            enumeration: n.enumeration.iter().flatten().copied().collect(),
        },
        SchemaKind::Type(Type::Boolean(_)) => Kind::Boolean,
        SchemaKind::Type(Type::Array(a)) => Kind::Array {
            items: Box::new(match &a.items {
                Some(items) => boxed(r, items, &format!("{pointer}/items"), depth)?,
                None => Shape::any(),
            }),
            min_items: a.min_items.unwrap_or(0),
        },
        SchemaKind::Type(Type::Object(o)) => {
            let mut properties = Vec::new();
            for (name, s) in &o.properties {
                let p = format!("{pointer}/properties/{}", super::escape_pointer(name));
                properties.push((name.clone(), boxed(r, s, &p, depth)?));
            }
            Kind::Object { properties }
        }
        SchemaKind::OneOf { one_of: alts } | SchemaKind::AnyOf { any_of: alts } => {
            match alts.first() {
                Some(first) => {
                    let inner = r.schema(first, &format!("{pointer}/0"), depth + 1)?;
                    shape.example = shape.example.or(inner.example);
                    inner.kind
                }
                None => Kind::Any,
            }
        }
        SchemaKind::AllOf { all_of } => {
            let mut merged: Option<Kind> = None;
            for (i, part) in all_of.iter().enumerate() {
                let inner = r.schema(part, &format!("{pointer}/allOf/{i}"), depth + 1)?;
                merged = Some(match (merged, inner.kind) {
                    (None, k) => k,
                    (Some(Kind::Object { mut properties }), Kind::Object { properties: more }) => {
                        for (name, s) in more {
                            properties.retain(|(n, _)| *n != name);
                            properties.push((name, s));
                        }
                        Kind::Object { properties }
                    }
                    (Some(Kind::Any), k) => k,
                    (Some(k), _) => k,
                });
            }
            merged.unwrap_or(Kind::Any)
        }
        SchemaKind::Not { .. } => Kind::Any,
        SchemaKind::Any(any) => {
            if !any.properties.is_empty() || any.typ.as_deref() == Some("object") {
                let mut properties = Vec::new();
                for (name, s) in &any.properties {
                    let p = format!("{pointer}/properties/{}", super::escape_pointer(name));
                    properties.push((name.clone(), boxed(r, s, &p, depth)?));
                }
                Kind::Object { properties }
            } else if any.items.is_some() || any.typ.as_deref() == Some("array") {
                Kind::Array {
                    items: Box::new(match &any.items {
                        Some(items) => boxed(r, items, &format!("{pointer}/items"), depth)?,
                        None => Shape::any(),
                    }),
                    min_items: any.min_items.unwrap_or(0),
                }
            } else {
                match any.typ.as_deref() {
                    Some("string") => Kind::String {
                        format: any.format.clone(),
                        enumeration: any
                            .enumeration
                            .iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect(),
                        min_length: any.min_length,
                        max_length: any.max_length,
                    },
                    Some("integer") => Kind::Integer {
                        minimum: any.minimum.map(|m| m as i64),
                        maximum: any.maximum.map(|m| m as i64),
                        enumeration: any.enumeration.iter().filter_map(Value::as_i64).collect(),
                    },
                    Some("number") => Kind::Number {
                        minimum: any.minimum,
                        maximum: any.maximum,
                        enumeration: any.enumeration.iter().filter_map(Value::as_f64).collect(),
                    },
                    Some("boolean") => Kind::Boolean,
                    _ => Kind::Any,
                }
            }
        }
    };
    Ok(shape)
}
