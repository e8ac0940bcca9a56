//! Context values: JSON (as a request or a stored relationship carries them) → CEL values
//! of a parameter's declared type, and SpiceDB's `ipaddress` type with its `in_cidr`
//! method.
//!
//! Conversions are strict: a value of the wrong JSON kind is refused, never coerced, except
//! where JSON has no better spelling or SpiceDB accepts another: integers may be written as
//! integral numbers (`2.0`), numbers as decimal strings (`"42"`, see [`super::numeric`]),
//! timestamps as RFC 3339 strings, durations as Go-style strings (`"1h30m"`), ip addresses
//! as strings, bytes as (UTF-8) strings.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cel::objects::{Map, Opaque};
use cel::{ExecutionError, FunctionContext, Value};
use serde_json::Value as Json;

use super::numeric::{self, NumericError};
use super::types::ParamType;

/// An `ipaddress` value: what `in_cidr` is called on.
#[derive(Debug, PartialEq, Eq)]
pub struct IpAddress(pub IpAddr);

impl Opaque for IpAddress {
    fn runtime_type_name(&self) -> &str {
        "ipaddress"
    }
}

/// The CEL value of `json` as a parameter of type `ty`; the error says what was expected
/// (the caller adds which parameter).
pub fn json_to_value(ty: &ParamType, json: &Json) -> Result<Value, String> {
    let mismatch = || format!("expected {}, found {}", describe(ty), json_kind(json));
    Ok(match ty {
        ParamType::Any => any_value(json),
        ParamType::Bool => Value::Bool(json.as_bool().ok_or_else(mismatch)?),
        ParamType::Int => match json {
            Json::Number(number) => match number.as_i64() {
                Some(int) => Value::Int(int),
                None => Value::Int(
                    integral(number.as_f64(), i64::MIN as f64, i64::MAX as f64)
                        .ok_or_else(mismatch)? as i64,
                ),
            },
            Json::String(text) => {
                Value::Int(numeric::int_of(text).map_err(|err| numeric_error(ty, text, err))?)
            }
            _ => return Err(mismatch()),
        },
        ParamType::Uint => match json {
            Json::Number(number) => match number.as_u64() {
                Some(uint) => Value::UInt(uint),
                None => Value::UInt(
                    integral(number.as_f64(), 0.0, u64::MAX as f64).ok_or_else(mismatch)? as u64,
                ),
            },
            Json::String(text) => {
                Value::UInt(numeric::uint_of(text).map_err(|err| numeric_error(ty, text, err))?)
            }
            _ => return Err(mismatch()),
        },
        ParamType::Double => match json {
            Json::String(text) => {
                Value::Float(numeric::double_of(text).map_err(|err| numeric_error(ty, text, err))?)
            }
            _ => Value::Float(json.as_f64().ok_or_else(mismatch)?),
        },
        ParamType::String => Value::String(Arc::new(json.as_str().ok_or_else(mismatch)?.into())),
        ParamType::Bytes => Value::Bytes(Arc::new(
            json.as_str().ok_or_else(mismatch)?.as_bytes().to_vec(),
        )),
        ParamType::Duration => {
            let text = json.as_str().ok_or_else(mismatch)?;
            let Some(nanos) = go_duration_nanos(text) else {
                return Err(format!("invalid duration `{text}`: expected e.g. `1h30m`"));
            };
            if !duration_in_range(nanos) {
                return Err(format!(
                    "invalid duration `{text}`: beyond ±{MAX_DURATION_HOURS}h (what an int64 of nanoseconds holds, as cel-go)"
                ));
            }
            cel::functions::duration(Arc::new(text.to_string()))
                .map_err(|_| format!("invalid duration `{text}`: expected e.g. `1h30m`"))?
        }
        ParamType::Timestamp => {
            let text = json.as_str().ok_or_else(mismatch)?;
            cel::functions::timestamp(Arc::new(text.to_string())).map_err(|_| {
                format!(
                    "invalid timestamp `{text}`: expected RFC 3339, e.g. `2026-12-01T00:00:00Z`"
                )
            })?
        }
        ParamType::IpAddress => {
            let text = json.as_str().ok_or_else(mismatch)?;
            let ip: IpAddr = text
                .parse()
                .map_err(|_| format!("invalid ip address `{text}`"))?;
            Value::Opaque(Arc::new(IpAddress(ip)))
        }
        ParamType::List(inner) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            let values = items
                .iter()
                .enumerate()
                .map(|(idx, item)| {
                    json_to_value(inner, item).map_err(|err| format!("item {idx}: {err}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Value::List(Arc::new(values))
        }
        ParamType::Map(inner) => {
            let entries = json.as_object().ok_or_else(mismatch)?;
            let mut map = HashMap::with_capacity(entries.len());
            for (key, item) in entries {
                let value =
                    json_to_value(inner, item).map_err(|err| format!("key `{key}`: {err}"))?;
                map.insert(key.clone(), value);
            }
            Value::Map(Map::from(map))
        }
    })
}

/// The largest duration cel-go holds (an int64 of nanoseconds), in whole hours, for
/// messages.
const MAX_DURATION_HOURS: i64 = i64::MAX / 3_600_000_000_000;

/// Whether `value` is a duration cel-go cannot hold: one beyond an int64 of nanoseconds
/// (about ±292 years), which the `cel` crate's wider durations can reach by arithmetic.
fn duration_out_of_range(value: &Value) -> bool {
    matches!(value, Value::Duration(duration) if duration.num_nanoseconds().is_none())
}

/// Whether a Go duration of `nanos` parses in Go (`time.ParseDuration` refuses more than
/// an int64 holds; the `cel` crate's parser saturates instead).
fn duration_in_range(nanos: i128) -> bool {
    (i128::from(i64::MIN)..=i128::from(i64::MAX)).contains(&nanos)
}

/// A result as cel-go bounds it: a duration beyond an int64 of nanoseconds fails as
/// SpiceDB's does (`integer overflow`).
fn in_range(value: Value, function: &str) -> Result<Value, ExecutionError> {
    if duration_out_of_range(&value) {
        return Err(ExecutionError::function_error(function, "integer overflow"));
    }
    Ok(value)
}

/// The names [`super::check`] gives CEL's `+` and `-` and the `duration()` conversion in
/// a checked tree: the `cel` crate's own operations, then the result bounded as cel-go
/// bounds it ([`in_range`]).
pub(crate) const CHECKED_ADD: &str = "arbiter.add";
pub(crate) const CHECKED_SUB: &str = "arbiter.sub";

/// `a + b`, bounded as cel-go bounds it.
pub(crate) fn checked_add(a: Value, b: Value) -> Result<Value, ExecutionError> {
    in_range((a + b)?, "+")
}

/// `a - b`, bounded as cel-go bounds it (`timestamp - timestamp` included).
pub(crate) fn checked_sub(a: Value, b: Value) -> Result<Value, ExecutionError> {
    in_range((a - b)?, "-")
}

/// `duration(text)`, refusing what cel-go cannot hold, as its conversion does.
pub(crate) fn checked_duration(text: Arc<String>) -> Result<Value, ExecutionError> {
    if go_duration_nanos(&text).is_some_and(|nanos| !duration_in_range(nanos)) {
        return Err(ExecutionError::function_error(
            "duration",
            "type conversion error: beyond what an int64 of nanoseconds holds",
        ));
    }
    cel::functions::duration(text)
}

/// The name [`super::check`] gives CEL's unary minus in a checked tree: `cel` negates an
/// `int` with wrapping arithmetic (`-a` of the least `int` is itself, so `-a < 0` would
/// hold), where cel-go and so SpiceDB fail with an overflow. No caveat can call it by
/// name: the checker refuses unknown functions, and a dotted name is not a global one.
pub(crate) const CHECKED_NEGATE: &str = "arbiter.negate";

/// CEL's unary minus with cel-go's overflow error.
pub(crate) fn checked_negate(value: Value) -> Result<Value, ExecutionError> {
    match value {
        Value::Int(int) => int
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| ExecutionError::function_error("-", "integer overflow")),
        Value::Float(float) => Ok(Value::Float(-float)),
        other => Err(ExecutionError::UnsupportedUnaryOperator("minus", other)),
    }
}

/// `ip.in_cidr("10.0.0.0/8")`: whether the address lies in the network. An address of the
/// other family is not in it; a malformed network is an error.
pub(crate) fn in_cidr(
    ftx: &FunctionContext,
    this: cel::extractors::This<Value>,
    cidr: Arc<String>,
) -> Result<bool, ExecutionError> {
    let Value::Opaque(opaque) = &this.0 else {
        return Err(ftx.error("`in_cidr` must be called on an ipaddress"));
    };
    let Some(IpAddress(ip)) = opaque.downcast_ref::<IpAddress>() else {
        return Err(ftx.error("`in_cidr` must be called on an ipaddress"));
    };
    let (network, prefix) =
        parse_cidr(&cidr).ok_or_else(|| ftx.error(format!("invalid cidr `{cidr}`")))?;
    Ok(cidr_contains(network, prefix, *ip))
}

/// Parses `ADDRESS/PREFIX`.
pub(crate) fn parse_cidr(text: &str) -> Option<(IpAddr, u32)> {
    let (address, prefix) = text.split_once('/')?;
    let network: IpAddr = address.parse().ok()?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return None;
    }
    let prefix: u32 = prefix.parse().ok()?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((network, prefix))
}

fn cidr_contains(network: IpAddr, prefix: u32, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(network), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(network) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(network) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// The nanoseconds of a Go duration — `0`, or an optional sign and one or more
/// `NUMBER UNIT` with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` — or `None` when `text`
/// is not one. A total past 2^64 is returned as 2^64 (out of range either way).
fn go_duration_nanos(text: &str) -> Option<i128> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if body == "0" {
        return Some(0);
    }
    let mut rest = body;
    if rest.is_empty() {
        return None;
    }
    // Past this, the total is out of range whatever follows; stop adding so that i128
    // cannot overflow on a long input.
    let cap = 1i128 << 64;
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[digits..];
        let (unit, nanos) = [
            ("ns", 1i128),
            ("us", 1_000),
            ("µs", 1_000),
            ("ms", 1_000_000),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000),
        ]
        .into_iter()
        .find(|(unit, _)| rest.starts_with(unit) && !(*unit == "m" && rest.starts_with("ms")))?;
        rest = &rest[unit.len()..];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let mut value: i128 = 0;
        for digit in whole.bytes() {
            value = (value * 10 + i128::from(digit - b'0')).min(cap);
        }
        let mut part = value * nanos;
        // 18 digits resolve far below a nanosecond of an hour, and keep the product
        // below i128's range (10^18 * 3.6 * 10^12); later digits cannot matter.
        let mut scale = 1i128;
        let mut fraction_value = 0i128;
        for digit in fraction.bytes().take(18) {
            fraction_value = fraction_value * 10 + i128::from(digit - b'0');
            scale *= 10;
        }
        part += fraction_value * nanos / scale;
        total = (total + part).min(cap);
    }
    Some(if negative { -total } else { total })
}

/// Why the string `text` is no value of the numeric type `ty`.
fn numeric_error(ty: &ParamType, text: &str, err: NumericError) -> String {
    let ty = describe(ty);
    match err {
        NumericError::Malformed => {
            format!("expected {ty}, found the string {text:?}, which is not a decimal number")
        }
        NumericError::NotIntegral => {
            format!("expected {ty}, found {text:?}, which is not integral")
        }
        NumericError::OutOfRange => format!("{text:?} is out of the range of {ty}"),
    }
}

fn integral(value: Option<f64>, min: f64, max: f64) -> Option<f64> {
    let value = value?;
    (value.fract() == 0.0 && value >= min && value <= max).then_some(value)
}

/// The natural CEL value of any JSON (for parameters of type `any`).
fn any_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(number) => {
            if let Some(int) = number.as_i64() {
                Value::Int(int)
            } else if let Some(uint) = number.as_u64() {
                Value::UInt(uint)
            } else {
                Value::Float(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(text) => Value::String(Arc::new(text.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(any_value).collect())),
        Json::Object(entries) => {
            let map: HashMap<String, Value> = entries
                .iter()
                .map(|(key, value)| (key.clone(), any_value(value)))
                .collect();
            Value::Map(Map::from(map))
        }
    }
}

fn describe(ty: &ParamType) -> String {
    match ty {
        ParamType::Duration => "a duration string".into(),
        ParamType::Timestamp => "a timestamp string".into(),
        ParamType::IpAddress => "an ip address string".into(),
        ParamType::Bytes => "a string (bytes)".into(),
        ParamType::List(_) => format!("an array (`{ty}`)"),
        ParamType::Map(_) => format!("an object (`{ty}`)"),
        ParamType::Int | ParamType::Uint => format!("an integer (`{ty}`)"),
        ParamType::Double => "a number".into(),
        ParamType::Bool => "a boolean".into(),
        ParamType::String => "a string".into(),
        ParamType::Any => "any value".into(),
    }
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(text: &str) -> ParamType {
        ParamType::parse(text).unwrap()
    }

    #[test]
    fn go_durations_read_to_nanoseconds_and_are_bounded_as_go_bounds_them() {
        let cases: &[(&str, Option<i128>)] = &[
            ("0", Some(0)),
            ("1h30m", Some(5_400_000_000_000)),
            ("1.5s", Some(1_500_000_000)),
            ("-2ms", Some(-2_000_000)),
            ("+3us", Some(3_000)),
            ("1µs1ns", Some(1_001)),
            (".5s", Some(500_000_000)),
            ("1.999999999999999999999999999999h", Some(7_199_999_999_999)),
            ("", None),
            ("1x", None),
            ("1", None),
            ("h", None),
        ];
        for (text, nanos) in cases {
            assert_eq!(go_duration_nanos(text), *nanos, "{text}");
        }
        for (text, in_range) in [
            ("2562047h", true),
            ("2562048h", false),
            ("9223372036854775807ns", true),
            ("9223372036854775808ns", false),
            ("-9223372036854775808ns", true),
            ("-9223372036854775809ns", false),
            ("99999999999999999999999999999999999999999h", false),
        ] {
            assert_eq!(
                go_duration_nanos(text).is_some_and(duration_in_range),
                in_range,
                "{text}"
            );
        }
    }

    #[test]
    fn values_of_each_type_convert() {
        let cases = [
            ("int", json!(3), Value::Int(3)),
            ("int", json!(2.0), Value::Int(2)),
            ("uint", json!(7), Value::UInt(7)),
            ("double", json!(1), Value::Float(1.0)),
            ("bool", json!(true), Value::Bool(true)),
            ("string", json!("x"), Value::String(Arc::new("x".into()))),
            ("bytes", json!("ab"), Value::Bytes(Arc::new(b"ab".to_vec()))),
            ("any", json!(null), Value::Null),
            (
                "list<int>",
                json!([1, 2]),
                Value::List(Arc::new(vec![Value::Int(1), Value::Int(2)])),
            ),
        ];
        for (type_text, json, expected) in cases {
            assert_eq!(
                json_to_value(&ty(type_text), &json).unwrap(),
                expected,
                "{type_text}"
            );
        }
        assert!(matches!(
            json_to_value(&ty("duration"), &json!("1h30m")).unwrap(),
            Value::Duration(d) if d.num_minutes() == 90
        ));
        assert!(matches!(
            json_to_value(&ty("timestamp"), &json!("2026-12-01T00:00:00Z")).unwrap(),
            Value::Timestamp(_)
        ));
        assert!(matches!(
            json_to_value(&ty("map<string>"), &json!({"a": "b"})).unwrap(),
            Value::Map(_)
        ));
    }

    #[test]
    fn wrong_values_are_refused_with_a_reason() {
        let cases = [
            (
                "int",
                json!("3.5"),
                "expected an integer (`int`), found \"3.5\", which is not integral",
            ),
            (
                "uint",
                json!("-3"),
                "\"-3\" is out of the range of an integer (`uint`)",
            ),
            ("bool", json!("true"), "expected a boolean, found a string"),
            (
                "int",
                json!(2.5),
                "expected an integer (`int`), found a number",
            ),
            (
                "uint",
                json!(-1),
                "expected an integer (`uint`), found a number",
            ),
            ("bool", json!(1), "expected a boolean, found a number"),
            ("string", json!(null), "expected a string, found null"),
            (
                "duration",
                json!("1x"),
                "invalid duration `1x`: expected e.g. `1h30m`",
            ),
            (
                "duration",
                json!("1h garbage"),
                "invalid duration `1h garbage`: expected e.g. `1h30m`",
            ),
            (
                "ipaddress",
                json!("10.0.0.300"),
                "invalid ip address `10.0.0.300`",
            ),
            (
                "list<int>",
                json!([1, "a"]),
                "item 1: expected an integer (`int`), found the string \"a\", which is not a decimal number",
            ),
            (
                "map<bool>",
                json!({"k": 1}),
                "key `k`: expected a boolean, found a number",
            ),
        ];
        for (type_text, json, expected) in cases {
            assert_eq!(
                json_to_value(&ty(type_text), &json).unwrap_err(),
                expected,
                "{type_text}"
            );
        }
        assert!(json_to_value(&ty("timestamp"), &json!("yesterday")).is_err());
    }

    #[test]
    fn cidr_membership() {
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("192.168.1.7/32", "192.168.1.7", true),
            ("2001:db8::/32", "2001:db8::1", true),
            ("2001:db8::/32", "10.0.0.1", false),
        ];
        for (cidr, ip, expected) in cases {
            let (network, prefix) = parse_cidr(cidr).unwrap();
            assert_eq!(
                cidr_contains(network, prefix, ip.parse().unwrap()),
                expected,
                "{cidr} {ip}"
            );
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0.0/", "::/129"] {
            assert!(parse_cidr(bad).is_none(), "{bad}");
        }
    }
}
