//! What a relationship may carry besides its tuple: a [`RelationshipCaveat`] (a caveat
//! name and the context stored with it) and an expiration, and their text form, SpiceDB's
//! validation-file suffixes: `[name]`, `[name:{"key":"value"}]`, `[expiration:RFC3339]`,
//! the caveat first when there are both.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

use super::{ModelError, Timestamp, is_valid_caveat_name};

/// The largest stored caveat context, in bytes of compact JSON.
pub const MAX_CAVEAT_CONTEXT_BYTES: usize = 4096;

/// The suffix keyword of an expiration; no caveat may have this name, so that
/// `[expiration:…]` has one reading.
pub const EXPIRATION_KEYWORD: &str = "expiration";

/// The caveat of a relationship: the relationship holds only where the caveat's
/// expression, evaluated with `context` and the request's context, is true.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelationshipCaveat {
    /// A caveat name as the schema declares it (`ip_allowlist`, `ns/ip_allowlist`).
    pub name: String,
    /// The values stored with the relationship; they win over the request's for the same
    /// key. Empty when the caveat was written without context.
    pub context: Map<String, Value>,
}

impl RelationshipCaveat {
    /// Builds a caveat after validating its name and the size of its context.
    pub fn new(name: &str, context: Map<String, Value>) -> Result<Self, ModelError> {
        let res = Self {
            name: name.to_string(),
            context,
        };
        res.check()?;
        Ok(res)
    }

    /// Checks the name rules and the context size limit.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.name == EXPIRATION_KEYWORD {
            return Err(ModelError::CaveatName {
                name: self.name.clone(),
                reason: "the name is reserved for the expiration suffix",
            });
        }
        if !is_valid_caveat_name(&self.name) {
            return Err(ModelError::CaveatName {
                name: self.name.clone(),
                reason: "expected letters, digits and `_`, words joined by `/`, at most 128 bytes",
            });
        }
        let len = self.context_json().len();
        if len > MAX_CAVEAT_CONTEXT_BYTES {
            return Err(ModelError::CaveatContext {
                name: self.name.clone(),
                reason: format!(
                    "the context is {len} bytes of json, at most {MAX_CAVEAT_CONTEXT_BYTES} are allowed"
                ),
            });
        }
        Ok(())
    }

    /// The context as compact JSON (keys in sorted order).
    pub fn context_json(&self) -> String {
        Value::Object(self.context.clone()).to_string()
    }
}

impl PartialOrd for RelationshipCaveat {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RelationshipCaveat {
    /// By name, then by the context's compact JSON text (consistent with `Eq`: two
    /// contexts are equal exactly when their JSON texts are).
    fn cmp(&self, other: &Self) -> Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.context_json().cmp(&other.context_json()))
    }
}

impl fmt::Display for RelationshipCaveat {
    /// `[name]` without context, `[name:{…}]` with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "[{}]", self.name)
        } else {
            write!(f, "[{}:{}]", self.name, self.context_json())
        }
    }
}

/// Prints the suffixes of a relationship: the caveat, then the expiration.
pub(super) fn write_suffixes(
    f: &mut fmt::Formatter<'_>,
    caveat: Option<&RelationshipCaveat>,
    expiration: Option<Timestamp>,
) -> fmt::Result {
    if let Some(caveat) = caveat {
        write!(f, "{caveat}")?;
    }
    if let Some(expiration) = expiration {
        write!(f, "[{EXPIRATION_KEYWORD}:{expiration}]")?;
    }
    Ok(())
}

/// Parses the suffixes after a relationship's subject: `input` starts at the first `[`
/// (or is empty). `whole` is the relationship's full text, for messages.
pub(super) fn parse_suffixes(
    whole: &str,
    mut input: &str,
) -> Result<(Option<RelationshipCaveat>, Option<Timestamp>), ModelError> {
    let malformed = |expected: &'static str| ModelError::Malformed {
        what: "relationship suffix",
        input: whole.to_string(),
        expected,
    };
    let mut caveat = None;
    let mut expiration = None;
    while !input.is_empty() {
        let body = input
            .strip_prefix('[')
            .ok_or_else(|| malformed("`[caveat]`, `[caveat:{…}]` or `[expiration:…]`"))?;
        if let Some(text) = body.strip_prefix("expiration:") {
            if expiration.is_some() {
                return Err(malformed("at most one `[expiration:…]`"));
            }
            let end = text
                .find(']')
                .ok_or_else(|| malformed("`]` after the expiration"))?;
            expiration = Some(text[..end].parse::<Timestamp>()?);
            input = &text[end + 1..];
            continue;
        }
        if caveat.is_some() {
            return Err(malformed("at most one caveat"));
        }
        if expiration.is_some() {
            return Err(malformed("the caveat before the expiration"));
        }
        let name_end = body
            .find([':', ']'])
            .ok_or_else(|| malformed("`]` after the caveat"))?;
        let name = &body[..name_end];
        let rest = &body[name_end..];
        let (context, rest) = match rest.strip_prefix(':') {
            Some(json) => parse_context(name, json)?,
            None => (Map::new(), rest),
        };
        let rest = rest
            .strip_prefix(']')
            .ok_or_else(|| malformed("`]` after the caveat context"))?;
        caveat = Some(RelationshipCaveat::new(name, context)?);
        input = rest;
    }
    Ok((caveat, expiration))
}

/// Reads one JSON object at the start of `input`; returns it and the text after it.
fn parse_context<'a>(
    name: &str,
    input: &'a str,
) -> Result<(Map<String, Value>, &'a str), ModelError> {
    let context_error = |reason: String| ModelError::CaveatContext {
        name: name.to_string(),
        reason,
    };
    if !input.starts_with('{') {
        return Err(context_error("expected a json object after `:`".into()));
    }
    let mut stream = serde_json::Deserializer::from_str(input).into_iter::<Map<String, Value>>();
    match stream.next() {
        Some(Ok(context)) => Ok((context, &input[stream.byte_offset()..])),
        Some(Err(err)) => Err(context_error(format!("invalid json: {err}"))),
        None => Err(context_error("expected a json object after `:`".into())),
    }
}
