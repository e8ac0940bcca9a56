//! Caveat parameter types: SpiceDB's list (`int`, `uint`, `bool`, `string`, `double`,
//! `bytes`, `duration`, `timestamp`, `list<T>`, `map<T>`, `ipaddress`, `any`), parsed from
//! their schema spelling and printed back the same way.

use std::fmt;

/// The type of one caveat parameter. `map<T>` has string keys, as in SpiceDB.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    Any,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    IpAddress,
    List(Box<ParamType>),
    Map(Box<ParamType>),
}

/// The deepest nesting of `list<…>`/`map<…>` accepted in a parameter type.
const MAX_TYPE_DEPTH: usize = 8;

impl ParamType {
    /// Parses a type as written in a schema (`list<map<int>>`); spaces around `<`, `>` are
    /// allowed. The error says what is wrong, with the offending text in backticks.
    pub fn parse(text: &str) -> Result<ParamType, String> {
        let (ty, rest) = parse_type(text, 0)?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected `{}` after parameter type", rest.trim()));
        }
        Ok(ty)
    }

    /// The family used by the type checker to refuse comparisons that can never hold
    /// (`int` against `string`). Numbers form one family.
    pub(crate) fn family(&self) -> Option<&'static str> {
        Some(match self {
            ParamType::Any => return None,
            ParamType::Bool => "bool",
            ParamType::Int | ParamType::Uint | ParamType::Double => "number",
            ParamType::String => "string",
            ParamType::Bytes => "bytes",
            ParamType::Duration => "duration",
            ParamType::Timestamp => "timestamp",
            ParamType::IpAddress => "ipaddress",
            ParamType::List(_) => "list",
            ParamType::Map(_) => "map",
        })
    }
}

fn parse_type(text: &str, depth: usize) -> Result<(ParamType, &str), String> {
    let text = text.trim_start();
    let len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (name, rest) = text.split_at(len);
    let simple = match name {
        "any" => Some(ParamType::Any),
        "bool" => Some(ParamType::Bool),
        "int" => Some(ParamType::Int),
        "uint" => Some(ParamType::Uint),
        "double" => Some(ParamType::Double),
        "string" => Some(ParamType::String),
        "bytes" => Some(ParamType::Bytes),
        "duration" => Some(ParamType::Duration),
        "timestamp" => Some(ParamType::Timestamp),
        "ipaddress" => Some(ParamType::IpAddress),
        "list" | "map" => None,
        "" => return Err("expected a parameter type".to_string()),
        other => return Err(format!("unknown parameter type `{other}`")),
    };
    if let Some(ty) = simple {
        return Ok((ty, rest));
    }
    if depth >= MAX_TYPE_DEPTH {
        return Err(format!(
            "parameter type nested too deeply: more than {MAX_TYPE_DEPTH} levels"
        ));
    }
    let Some(inner_text) = rest.trim_start().strip_prefix('<') else {
        return Err(format!("expected `<` after `{name}`"));
    };
    let (inner, rest) = parse_type(inner_text, depth + 1)?;
    let Some(rest) = rest.trim_start().strip_prefix('>') else {
        return Err(format!("expected `>` to close `{name}<`"));
    };
    let ty = if name == "list" {
        ParamType::List(Box::new(inner))
    } else {
        ParamType::Map(Box::new(inner))
    };
    Ok((ty, rest))
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Any => f.write_str("any"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::Int => f.write_str("int"),
            ParamType::Uint => f.write_str("uint"),
            ParamType::Double => f.write_str("double"),
            ParamType::String => f.write_str("string"),
            ParamType::Bytes => f.write_str("bytes"),
            ParamType::Duration => f.write_str("duration"),
            ParamType::Timestamp => f.write_str("timestamp"),
            ParamType::IpAddress => f.write_str("ipaddress"),
            ParamType::List(inner) => write!(f, "list<{inner}>"),
            ParamType::Map(inner) => write!(f, "map<{inner}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_print_back() {
        for text in [
            "any",
            "bool",
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "duration",
            "timestamp",
            "ipaddress",
            "list<string>",
            "map<list<int>>",
        ] {
            assert_eq!(ParamType::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            ParamType::parse(" list < int > ").unwrap(),
            ParamType::List(Box::new(ParamType::Int))
        );
    }

    #[test]
    fn bad_types_are_named() {
        let cases = [
            ("integer", "unknown parameter type `integer`"),
            ("list", "expected `<` after `list`"),
            ("list<int", "expected `>` to close `list<`"),
            ("map<>", "expected a parameter type"),
            ("int x", "unexpected `x` after parameter type"),
        ];
        for (text, expected) in cases {
            assert_eq!(ParamType::parse(text).unwrap_err(), expected, "{text}");
        }
        let deep = format!("{}int{}", "list<".repeat(20), ">".repeat(20));
        assert!(ParamType::parse(&deep).unwrap_err().contains("too deeply"));
    }
}
