//! Hardened YAML loading.
//!
//! `serde_yaml::Value` is the parser of record: it refuses duplicate keys (maps and
//! `serde_json::Value` would keep the last value silently) and bounds alias expansion. It exposes
//! no positions, so a second pass with saphyr's marked tree maps every JSON pointer to the line
//! and column of its key and value; saphyr also reports a duplicate key at the duplicate itself.
//! Tags, non-string keys and non-finite numbers are refused: JSON can not represent them.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, YamlData};
use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

use crate::diagnostic::{Diagnostic, DiagnosticCode, Location, push_token};

/// Where the key and the value of each node of a document stand in the YAML text.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    nodes: HashMap<String, NodeLocation>,
}

#[derive(Debug, Clone, Copy)]
struct NodeLocation {
    key: Option<Location>,
    value: Location,
}

impl Locations {
    /// Where the value at `pointer` starts; for a pointer to a node that does not exist (a
    /// missing property), the nearest existing ancestor.
    pub fn value(&self, pointer: &str) -> Location {
        self.nearest(pointer)
            .map_or(Location::START, |node| node.value)
    }

    /// Where the key of the member at `pointer` starts (its value for array items).
    pub fn key(&self, pointer: &str) -> Location {
        self.nearest(pointer)
            .map_or(Location::START, |node| node.key.unwrap_or(node.value))
    }

    fn nearest(&self, pointer: &str) -> Option<&NodeLocation> {
        let mut current = pointer;
        loop {
            if let Some(node) = self.nodes.get(current) {
                return Some(node);
            }
            current = &current[..current.rfind('/')?];
        }
    }
}

/// A parsed document with the positions of its nodes.
#[derive(Debug)]
pub(crate) struct LoadedYaml {
    pub value: Value,
    pub locations: Locations,
}

/// Parses one YAML document into JSON, or says every reason why that is not possible.
pub(crate) fn load(text: &str) -> Result<LoadedYaml, Vec<Diagnostic>> {
    let marked = MarkedYaml::load_from_str(text);
    let yaml: Yaml = serde_yaml::from_str(text)
        .map_err(|error| vec![describe_parse_error(&error, marked.as_ref().err())])?;
    let locations = match &marked {
        Ok(documents) => documents
            .first()
            .map(|root| {
                let mut locations = Locations::default();
                record(root, String::new(), None, &mut locations);
                locations
            })
            .unwrap_or_default(),
        // serde_yaml accepted what saphyr did not: keep the value, report without positions.
        Err(_) => Locations::default(),
    };
    let mut problems = Vec::new();
    let value = to_json(yaml, "", &locations, &mut problems);
    if problems.is_empty() {
        Ok(LoadedYaml { value, locations })
    } else {
        Err(problems)
    }
}

fn describe_parse_error(
    error: &serde_yaml::Error,
    saphyr_error: Option<&saphyr::ScanError>,
) -> Diagnostic {
    let message = error.to_string();
    let location = error.location().map_or(Location::START, |at| Location {
        line: at.line(),
        column: at.column(),
    });
    if message.contains("duplicate entry with key") {
        // serde_yaml points at the enclosing mapping; saphyr points at the duplicate key itself.
        let location = saphyr_error
            .filter(|scan| scan.info().contains("duplicated key"))
            .map_or(location, |scan| Location {
                line: scan.marker().line(),
                column: scan.marker().col() + 1,
            });
        let key = message
            .split("duplicate entry with key ")
            .nth(1)
            .map(|rest| rest.split(" at line").next().unwrap_or(rest))
            .unwrap_or("?");
        return Diagnostic {
            code: DiagnosticCode::DuplicateKey,
            pointer: String::new(),
            location,
            message: format!("duplicate key {key}: a key may appear only once in a mapping"),
        };
    }
    let message = if message.contains("more than one document") {
        "a config file must hold exactly one YAML document (remove the `---` separators)".to_owned()
    } else if message.contains("repetition limit exceeded") {
        "YAML aliases expand to too many nodes (repetition limit exceeded)".to_owned()
    } else {
        message
    };
    Diagnostic {
        code: DiagnosticCode::YamlSyntax,
        pointer: String::new(),
        location,
        message,
    }
}

fn record(node: &MarkedYaml, pointer: String, key: Option<Location>, into: &mut Locations) {
    let value = marker_location(node);
    into.nodes
        .insert(pointer.clone(), NodeLocation { key, value });
    match &node.data {
        YamlData::Mapping(mapping) => {
            for (key_node, child) in mapping {
                if let Some(token) = scalar_text(key_node) {
                    let child_pointer = push_token(&pointer, &token);
                    record(child, child_pointer, Some(marker_location(key_node)), into);
                }
            }
        }
        YamlData::Sequence(items) => {
            for (index, child) in items.iter().enumerate() {
                record(child, format!("{pointer}/{index}"), None, into);
            }
        }
        // A tagged scalar's inner node has no position of its own; containers keep theirs.
        YamlData::Tagged(_, inner) if inner.span.start.line() > 0 => {
            record(inner, pointer, key, into);
        }
        _ => {}
    }
}

fn marker_location(node: &MarkedYaml) -> Location {
    Location {
        line: node.span.start.line().max(1),
        column: node.span.start.col() + 1,
    }
}

fn scalar_text(node: &MarkedYaml) -> Option<String> {
    match &node.data {
        YamlData::Value(scalar) => Some(match scalar {
            saphyr::Scalar::String(text) => text.to_string(),
            saphyr::Scalar::Integer(number) => number.to_string(),
            saphyr::Scalar::FloatingPoint(number) => number.to_string(),
            saphyr::Scalar::Boolean(flag) => flag.to_string(),
            saphyr::Scalar::Null => "null".to_owned(),
        }),
        _ => None,
    }
}

fn to_json(
    yaml: Yaml,
    pointer: &str,
    locations: &Locations,
    problems: &mut Vec<Diagnostic>,
) -> Value {
    let mut refuse = |message: String| {
        problems.push(Diagnostic {
            code: DiagnosticCode::UnsupportedYaml,
            pointer: pointer.to_owned(),
            location: locations.value(pointer),
            message,
        });
        Value::Null
    };
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(flag) => Value::Bool(flag),
        Yaml::String(text) => Value::String(text),
        Yaml::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                match number.as_f64().and_then(Number::from_f64) {
                    Some(finite) => Value::Number(finite),
                    None => refuse(format!("{number} is not a finite number")),
                }
            }
        }
        Yaml::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    to_json(item, &format!("{pointer}/{index}"), locations, problems)
                })
                .collect(),
        ),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                match key {
                    Yaml::String(key) => {
                        let child = to_json(value, &push_token(pointer, &key), locations, problems);
                        object.insert(key, child);
                    }
                    other => {
                        let shown = serde_yaml::to_string(&other).unwrap_or_default();
                        problems.push(Diagnostic {
                            code: DiagnosticCode::UnsupportedYaml,
                            pointer: pointer.to_owned(),
                            location: locations.value(pointer),
                            message: format!(
                                "mapping key {} is not a string (quote it)",
                                shown.trim()
                            ),
                        });
                    }
                }
            }
            Value::Object(object)
        }
        Yaml::Tagged(tagged) => refuse(format!(
            "YAML tag {} is not allowed in a config file",
            tagged.tag
        )),
    }
}
