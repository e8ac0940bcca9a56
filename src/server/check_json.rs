//! The JSON check's body and answer on its hot path (issue 14, item 5): the common body
//! read by hand, its strings borrowed from the request's bytes, instead of by serde (whose
//! owned strings and buffering of the internally tagged consistency cost more than the
//! check itself); the answer written without the general serializer. Neither changes
//! what the API accepts or says:
//! - a body the hand reader does not take (an escaped string, a context, an unusual
//!   consistency, any error) is read again as the derived [`CheckBody`], whose value or
//!   error stands; the hand reader takes only bodies `CheckBody` takes, with the same
//!   values (tested below, on a corpus and on random mutations of it);
//! - the answer is byte for byte the serialized [`CheckAnswer`] (tested below); an answer
//!   with an explanation is serialized by serde as before.

use std::borrow::Cow;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::dto::{CheckAnswer, CheckBody, ConsistencyBody};
use super::error::ApiError;
use super::handlers::{Answer, with_revision};
use crate::engine::Permissionship;
use crate::model::Revision;

/// A `POST /v1/check` body, its strings borrowed from the request when they can be.
#[derive(Debug, PartialEq)]
pub struct CheckText<'a> {
    pub resource: Cow<'a, str>,
    pub permission: Cow<'a, str>,
    pub subject: Cow<'a, str>,
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    pub consistency: Option<ConsistencyBody>,
    pub explain: bool,
}

/// Reads a check body: by hand when it has the common shape, else as [`CheckBody`],
/// whose value or error stands.
pub fn parse(bytes: &[u8]) -> Result<CheckText<'_>, ApiError> {
    if let Some(body) = Scanner::new(bytes).and_then(Scanner::check_body) {
        return Ok(body);
    }
    serde_json::from_slice::<CheckBody>(bytes)
        .map(CheckText::from)
        .map_err(|err| ApiError::BadJson(format!("invalid json body: {err}")))
}

impl From<CheckBody> for CheckText<'static> {
    fn from(body: CheckBody) -> Self {
        Self {
            resource: Cow::Owned(body.resource),
            permission: Cow::Owned(body.permission),
            subject: Cow::Owned(body.subject),
            context: body.context,
            consistency: body.consistency,
            explain: body.explain,
        }
    }
}

/// A reader of the common check body: one object with `resource`, `permission` and
/// `subject` (strings without escapes) and optionally `consistency` (`mode` and, for the
/// two modes that take one, `revision`), each member once, nothing else, in a body that
/// is valid UTF-8 throughout. Every method answers `None` at the first byte outside that
/// shape, and the derived reader then decides; so whatever it reads, the derived reader
/// reads too, with the same values.
struct Scanner<'a> {
    /// The body, checked for UTF-8 once: a string's text is a slice between two quotes,
    /// so it needs no check of its own.
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    /// `None` for a body that is not UTF-8: the derived reader refuses it.
    fn new(bytes: &'a [u8]) -> Option<Self> {
        Some(Self {
            text: std::str::from_utf8(bytes).ok()?,
            at: 0,
        })
    }

    fn check_body(mut self) -> Option<CheckText<'a>> {
        let (mut resource, mut permission, mut subject) = (None, None, None);
        let mut consistency = None;
        self.object(&BODY_KEYS, |scanner, key| {
            match key {
                "resource" if resource.is_none() => resource = Some(scanner.string()?),
                "permission" if permission.is_none() => permission = Some(scanner.string()?),
                "subject" if subject.is_none() => subject = Some(scanner.string()?),
                "consistency" if consistency.is_none() => {
                    consistency = Some(scanner.consistency()?);
                }
                _ => return None,
            }
            Some(())
        })?;
        self.space();
        if self.at != self.text.len() {
            return None;
        }
        Some(CheckText {
            resource: Cow::Borrowed(resource?),
            permission: Cow::Borrowed(permission?),
            subject: Cow::Borrowed(subject?),
            context: None,
            consistency,
            explain: false,
        })
    }

    /// `{"mode": …, "revision": …}` as the derived reader would take it.
    fn consistency(&mut self) -> Option<ConsistencyBody> {
        let (mut mode, mut revision) = (None, None);
        self.object(&CONSISTENCY_KEYS, |scanner, key| {
            match key {
                "mode" if mode.is_none() => mode = Some(scanner.string()?),
                "revision" if revision.is_none() => revision = Some(scanner.number()?),
                _ => return None,
            }
            Some(())
        })?;
        match (mode?, revision) {
            ("full", None) => Some(ConsistencyBody::Full {}),
            ("minimize_latency", None) => Some(ConsistencyBody::MinimizeLatency {}),
            ("at_least_as_fresh", Some(revision)) => {
                Some(ConsistencyBody::AtLeastAsFresh { revision })
            }
            ("at_exact_snapshot", Some(revision)) => {
                Some(ConsistencyBody::AtExactSnapshot { revision })
            }
            _ => None,
        }
    }

    /// A non-empty object whose keys are among `keys`; `member` reads the value of each.
    fn object(
        &mut self,
        keys: &[&'static str],
        mut member: impl FnMut(&mut Self, &'static str) -> Option<()>,
    ) -> Option<()> {
        self.space();
        self.eat(b'{')?;
        loop {
            self.space();
            let key = self.key(keys)?;
            self.space();
            self.eat(b':')?;
            self.space();
            member(self, key)?;
            self.space();
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The one of `keys` written here as a string without escapes (compared in place,
    /// not scanned); `None` for any other string, which the derived reader judges.
    fn key(&mut self, keys: &[&'static str]) -> Option<&'static str> {
        let rest = self.text.as_bytes().get(self.at..)?;
        let (&quote, name) = rest.split_first()?;
        if quote != b'"' {
            return None;
        }
        let key = keys.iter().find(|key| {
            name.get(..key.len()) == Some(key.as_bytes()) && name.get(key.len()) == Some(&b'"')
        })?;
        self.at += key.len() + 2;
        Some(key)
    }

    /// A string without escapes or control characters: the JSON text is its value.
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = bytes
            .get(start..)?
            .iter()
            .position(|&byte| STOPS[usize::from(byte)])?;
        let end = start + len;
        if bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are quotes, so the slice falls on character boundaries.
        self.text.get(start..end)
    }

    /// A non-negative integer that fits a `u64`, without leading zeros, not a float.
    fn number(&mut self) -> Option<u64> {
        let first = self.next().filter(u8::is_ascii_digit)?;
        let mut value = u64::from(first - b'0');
        while let Some(digit) = self.peek().filter(u8::is_ascii_digit) {
            if value == 0 {
                return None;
            }
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.at += 1;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(value),
        }
    }

    /// Skips JSON whitespace.
    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }
}

/// The members of a check body the lean reader takes, as their keys are written.
const BODY_KEYS: [&str; 4] = ["resource", "permission", "subject", "consistency"];
/// The members of a consistency the lean reader takes.
const CONSISTENCY_KEYS: [&str; 2] = ["mode", "revision"];

/// The bytes that end the text of a string without escapes: its closing quote, or the
/// backslash or control character that makes it not such a string.
static STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        stops[byte] = true;
        byte += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// The answer of one JSON check, written directly when it has no explanation.
pub struct CheckReply(pub Revision, pub CheckAnswer);

impl IntoResponse for CheckReply {
    fn into_response(self) -> Response {
        let CheckReply(revision, answer) = self;
        if answer.explanation.is_some() {
            return Answer(revision, answer).into_response();
        }
        let text = write_answer(
            answer.allowed,
            answer.permissionship,
            &answer.missing_context,
            answer.revision,
        );
        let mut response = Response::new(axum::body::Body::from(text));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        with_revision(response, revision)
    }
}

/// The JSON text of a [`CheckAnswer`] without explanation, as serde writes it.
fn write_answer(
    allowed: bool,
    permissionship: Permissionship,
    missing_context: &[String],
    revision: u64,
) -> Vec<u8> {
    // The exact size when the list is empty, so that the body takes the buffer as it is
    // (`Bytes` from a `Vec` with spare capacity allocates a header).
    let name = permissionship_name(permissionship);
    let digits = revision.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut out = Vec::with_capacity(ANSWER_FRAME + usize::from(!allowed) + name.len() + digits);
    out.extend_from_slice(if allowed {
        b"{\"allowed\":true,\"permissionship\":\""
    } else {
        b"{\"allowed\":false,\"permissionship\":\""
    });
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\",\"missing_context\":");
    if missing_context.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        write_json(&mut out, missing_context);
    }
    out.extend_from_slice(b",\"revision\":");
    write_json(&mut out, &revision);
    out.push(b'}');
    out
}

/// The bytes of an answer with an empty list other than the permissionship's name and
/// the revision's digits, with `"allowed":true`.
const ANSWER_FRAME: usize =
    r#"{"allowed":true,"permissionship":"","missing_context":[],"revision":}"#.len();

/// The permissionship as serde spells it.
fn permissionship_name(permissionship: Permissionship) -> &'static str {
    match permissionship {
        Permissionship::HasPermission => "has_permission",
        Permissionship::NoPermission => "no_permission",
        Permissionship::ConditionalPermission => "conditional_permission",
    }
}

/// Appends `value` as serde writes it; writing plain strings and numbers to a `Vec`
/// cannot fail.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if let Err(err) = serde_json::to_writer(&mut *out, value) {
        tracing::error!(%err, "a check answer could not be written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Consistency;
    use crate::server::dto::consistency;

    /// Bodies the lean reader takes and bodies it leaves to the derived one; for every one,
    /// `parse` must give what reading it as `CheckBody` gives, value or error text.
    const BODIES: &[&str] = &[
        r#"{"resource":"document:1","permission":"view","subject":"user:alice"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"full"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"minimize_latency"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":7}}"#,
        r#"{"consistency":{"revision":3,"mode":"at_exact_snapshot"},"subject":"group:eng#member","permission":"view","resource":"document:1"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":null,"explain":true}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","context":{"ip":"10.0.0.1","n":[1,2]}}"#,
        r#" { "resource" : "document:1" , "permission" : "view" , "subject" : "user:*" } "#,
        // Escaped strings: the derived reader answers.
        r#"{"resource":"document:\u0031","permission":"view","subject":"user:alice"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:a\"b"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"m\u006fde":"full"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":0}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":18446744073709551615}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":18446744073709551616}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":01}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":1e3}}"#,
        "{\"resource\":\"document:1\",\"permission\":\"view\",\"subject\":\"user:\u{e9}\"}",
        "{\"resource\":\"document:1\",\"permission\":\"view\",\"subject\":\"user:\ta\"}",
        "\u{feff}{\"resource\":\"document:1\",\"permission\":\"view\",\"subject\":\"user:a\"}",
        r#"{"resource":"document:1","permission":"view","subject":"user:alice",}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"full",}}"#,
        r#"{}"#,
        // The array form of a struct.
        r#"["document:1","view","user:alice"]"#,
        // Odd consistencies: unknown fields, missing or extra revision, duplicates, types.
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"full","revision":3}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"minimize_latency","x":1}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_exact_snapshot"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_exact_snapshot","revison":1}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"full","mode":"full"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":1,"revision":2}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"latest"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":-1}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":1.5}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{"mode":"at_least_as_fresh","revision":"1"}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":{}}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":"full"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","consistency":["full"]}"#,
        // Malformed bodies: missing, unknown, duplicate or mistyped fields, bad JSON.
        r#"{"resource":"document:1","permission":"view"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","extra":1}"#,
        r#"{"resource":"document:1","resource":"document:2","permission":"view","subject":"user:alice"}"#,
        r#"{"resource":1,"permission":"view","subject":"user:alice"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","explain":"yes"}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice","context":[1]}"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice"} x"#,
        r#"{"resource":"document:1","permission":"view","subject":"user:alice""#,
        "",
        "null",
        "[]",
    ];

    fn derived(text: &str) -> Result<CheckText<'static>, String> {
        derived_bytes(text.as_bytes())
    }

    fn derived_bytes(bytes: &[u8]) -> Result<CheckText<'static>, String> {
        serde_json::from_slice::<CheckBody>(bytes)
            .map(CheckText::from)
            .map_err(|err| ApiError::BadJson(format!("invalid json body: {err}")).to_string())
    }

    #[test]
    fn issue14_lean_check_body_reads_as_the_derived_one() {
        for text in BODIES {
            let lean = parse(text.as_bytes()).map_err(|err| err.to_string());
            assert_eq!(lean, derived(text), "{text}");
        }
    }

    /// Bytes that matter to JSON, for the mutations.
    const ALPHABET: &[u8] = b"{}[]:,\"\\ 0123456789.eE-+truefalsnl\t\nabcdemopsvx\x01\xc3\xa9";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn issue14_lean_check_body_reads_mutated_bodies_as_the_derived_one(
            which in 0..BODIES.len(),
            edits in proptest::collection::vec((0usize..200, 0u8..3, 0..ALPHABET.len()), 1..4),
        ) {
            let mut bytes = BODIES[which].as_bytes().to_vec();
            for (at, op, byte) in edits {
                let at = at % (bytes.len() + 1);
                let byte = ALPHABET[byte];
                match op {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => bytes[at] = byte,
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.push(byte),
                }
            }
            let lean = parse(&bytes).map_err(|err| err.to_string());
            let derived = derived_bytes(&bytes);
            proptest::prop_assert_eq!(lean, derived, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn issue14_lean_check_body_keeps_every_consistency_mode() {
        let base = r#""resource":"document:1","permission":"view","subject":"user:alice""#;
        let cases = [
            (r#"{"mode":"full"}"#, Consistency::Full),
            (
                r#"{"mode":"minimize_latency"}"#,
                Consistency::MinimizeLatency,
            ),
            (
                r#"{"mode":"at_least_as_fresh","revision":7}"#,
                Consistency::AtLeastAsFresh {
                    revision: Revision(7),
                },
            ),
            (
                r#"{"revision":3,"mode":"at_exact_snapshot"}"#,
                Consistency::AtExactSnapshot {
                    revision: Revision(3),
                },
            ),
        ];
        for (mode, want) in cases {
            let text = format!(r#"{{{base},"consistency":{mode}}}"#);
            let body = parse(text.as_bytes()).unwrap();
            // Borrowed: the lean reader took it.
            assert!(matches!(body.subject, Cow::Borrowed(_)), "{text}");
            assert_eq!(consistency(body.consistency), want, "{text}");
        }
    }

    #[test]
    fn issue14_written_check_answer_is_the_serialized_one() {
        let cases = [
            (true, Permissionship::HasPermission, vec![], 21),
            (false, Permissionship::NoPermission, vec![], 0),
            (
                false,
                Permissionship::ConditionalPermission,
                vec!["ip".to_string(), "we\"ird\\\u{1}é".to_string()],
                u64::MAX,
            ),
        ];
        for (allowed, permissionship, missing_context, revision) in cases {
            let written = write_answer(allowed, permissionship, &missing_context, revision);
            let answer = CheckAnswer {
                allowed,
                permissionship,
                missing_context,
                revision,
                explanation: None,
            };
            let serialized = serde_json::to_vec(&answer).unwrap();
            if answer.missing_context.is_empty() {
                assert_eq!(written.len(), written.capacity(), "{answer:?}");
            }
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(serialized).unwrap()
            );
        }
    }
}
