//! Numbers written as JSON strings (`"42"`, `"1.5"`, `"1e3"`), accepted for `int`, `uint`
//! and `double` parameters as SpiceDB accepts them: SpiceDB reads such a string as a
//! base-10 floating-point literal (Go's `big.ParseFloat`) — an optional sign, digits with
//! an optional fraction, an optional exponent — or `inf` / `Inf`. Clients written for
//! SpiceDB send them (protobuf's `Struct` has no integer type, so some stringify 64-bit
//! ids). No spaces, underscores, hexadecimal, `NaN` or `Infinity`.
//!
//! One deliberate difference: SpiceDB converts an integer out of `int64`'s range to the
//! nearest bound (so `"18446744073709551615"` for a `uint` is 9223372036854775807); arbiter
//! refuses it, as it refuses any value it cannot represent exactly. An integer parameter
//! is converted exactly here (no rounding through `f64`).

/// A decimal literal split into its parts: the value is `±digits × 10^scale`.
#[derive(Debug, PartialEq)]
enum Decimal<'a> {
    Finite {
        negative: bool,
        /// The significant digits, integer and fraction part together.
        digits: String,
        scale: i64,
        text: &'a str,
    },
    Infinite {
        negative: bool,
    },
}

/// Why a string is no number of the wanted type.
#[derive(Debug, PartialEq)]
pub(crate) enum NumericError {
    /// Not a decimal literal at all.
    Malformed,
    /// A decimal literal with a fraction, for an integer type.
    NotIntegral,
    /// An integer outside the type's range.
    OutOfRange,
}

/// The `i64` a string spells, read as SpiceDB reads it.
pub(crate) fn int_of(text: &str) -> Result<i64, NumericError> {
    let value = integer_of(text)?;
    i64::try_from(value).map_err(|_| NumericError::OutOfRange)
}

/// The `u64` a string spells (`"-0"` is 0, as in SpiceDB).
pub(crate) fn uint_of(text: &str) -> Result<u64, NumericError> {
    let value = integer_of(text)?;
    u64::try_from(value).map_err(|_| NumericError::OutOfRange)
}

/// The `f64` a string spells (the nearest one; too large a magnitude is infinite).
pub(crate) fn double_of(text: &str) -> Result<f64, NumericError> {
    match parse(text)? {
        Decimal::Infinite { negative } => Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        // The grammar checked is a subset of what `f64::from_str` reads.
        Decimal::Finite { text, .. } => text.parse().map_err(|_| NumericError::Malformed),
    }
}

/// The exact integer value of a decimal literal, as an `i128` (wide enough for either
/// 64-bit type's range check).
fn integer_of(text: &str) -> Result<i128, NumericError> {
    let Decimal::Finite {
        negative,
        digits,
        scale,
        ..
    } = parse(text)?
    else {
        return Err(NumericError::OutOfRange);
    };
    let digits = digits.trim_start_matches('0');
    let (digits, zeros) = if scale >= 0 {
        (digits, scale)
    } else {
        // The fraction's digits must all be zeros.
        let cut = usize::try_from(scale.unsigned_abs()).unwrap_or(usize::MAX);
        let (kept, fraction) = digits.split_at(digits.len().saturating_sub(cut));
        if fraction.bytes().any(|b| b != b'0') {
            return Err(NumericError::NotIntegral);
        }
        (kept, 0)
    };
    if digits.is_empty() {
        return Ok(0);
    }
    if digits.len() > 20 || zeros > 20 {
        return Err(NumericError::OutOfRange);
    }
    let mut value: i128 = digits.parse().map_err(|_| NumericError::Malformed)?;
    for _ in 0..zeros {
        value = value.checked_mul(10).ok_or(NumericError::OutOfRange)?;
    }
    Ok(if negative { -value } else { value })
}

/// Splits a decimal literal: `[+-]` then `inf` / `Inf`, or digits with an optional `.`
/// (at least one digit in all) and an optional `e` / `E` exponent with an optional sign.
fn parse(text: &str) -> Result<Decimal<'_>, NumericError> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body == "inf" || body == "Inf" {
        return Ok(Decimal::Infinite { negative });
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return Err(NumericError::Malformed);
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(exp) => {
            let unsigned = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if unsigned.is_empty() || !all_digits(unsigned) {
                return Err(NumericError::Malformed);
            }
            // An exponent too large for i64 is out of any range.
            exp.parse().map_err(|_| NumericError::OutOfRange)?
        }
    };
    let frac_len = i64::try_from(fraction.len()).map_err(|_| NumericError::OutOfRange)?;
    Ok(Decimal::Finite {
        negative,
        digits: format!("{whole}{fraction}"),
        scale: exponent
            .checked_sub(frac_len)
            .ok_or(NumericError::OutOfRange)?,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use NumericError::*;

    // The accepted and refused spellings were asked of SpiceDB v1.54 (the peer's oracle).
    #[test]
    fn integers_read_as_spicedb_reads_them() {
        let cases: &[(&str, Result<i64, NumericError>)] = &[
            ("1", Ok(1)),
            ("+1", Ok(1)),
            ("-1", Ok(-1)),
            ("-0", Ok(0)),
            ("01", Ok(1)),
            ("1.0", Ok(1)),
            ("1e0", Ok(1)),
            ("1.5e1", Ok(15)),
            ("1500e-2", Ok(15)),
            ("0.000", Ok(0)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("9223372036854775808", Err(OutOfRange)),
            ("1e30", Err(OutOfRange)),
            ("inf", Err(OutOfRange)),
            ("1.5", Err(NotIntegral)),
            ("1e-1", Err(NotIntegral)),
            (" 1", Err(Malformed)),
            ("1 ", Err(Malformed)),
            ("", Err(Malformed)),
            ("-", Err(Malformed)),
            (".", Err(Malformed)),
            ("1_0", Err(Malformed)),
            ("0x1", Err(Malformed)),
            ("1e", Err(Malformed)),
            ("e1", Err(Malformed)),
            ("NaN", Err(Malformed)),
        ];
        for (text, want) in cases {
            assert_eq!(&int_of(text), want, "int {text:?}");
        }
        assert_eq!(uint_of("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(uint_of("-0"), Ok(0));
        assert_eq!(uint_of("-1"), Err(OutOfRange));
        assert_eq!(uint_of("18446744073709551616"), Err(OutOfRange));
    }

    #[test]
    fn doubles_read_as_spicedb_reads_them() {
        let cases: &[(&str, Option<f64>)] = &[
            ("1.5", Some(1.5)),
            ("+1.5", Some(1.5)),
            ("1e3", Some(1000.0)),
            (".5", Some(0.5)),
            ("1.", Some(1.0)),
            ("inf", Some(f64::INFINITY)),
            ("-Inf", Some(f64::NEG_INFINITY)),
            ("1E400", Some(f64::INFINITY)),
            ("Infinity", None),
            ("NaN", None),
            ("nan", None),
            ("0x1p-2", None),
            (" 1.5", None),
            ("1_5", None),
        ];
        for (text, want) in cases {
            assert_eq!(double_of(text).ok(), *want, "double {text:?}");
        }
    }
}
