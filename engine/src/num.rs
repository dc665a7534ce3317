//! Numbers as Redis reads and writes them in strings.
//!
//! Redis is strict about integers (`string2ll`: optional `-`, no `+`, no leading zeros,
//! no spaces) and formats floats without an exponent. The same rules apply to stored
//! values (INCR on a string) and to command arguments.

/// Parses an i64 with Redis's `string2ll` rules.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a float as Redis does for `INCRBYFLOAT` and scores: no leading or trailing
/// space, not NaN. `inf`, `+inf` and `-inf` are accepted (callers reject them where Redis
/// does).
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_whitespace()) || text.ends_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let v: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        t if t.contains("nan") || t.contains("inf") => return None,
        _ => text.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Formats a float the way `INCRBYFLOAT` stores it: the shortest text that reads back as
/// the same value, never with an exponent ("3" for 3.0, "10.5", "0.1").
pub fn format_f64(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b"9223372036854775808"[..], b"-0", b"+1", b"01", b" 1", b"1 ", b"", b"-", b"1a", b"1.0"] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"5e3"), Some(5000.0));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(10.5 + 0.1), "10.6");
        assert_eq!(format_f64(-0.0), "0");
        assert_eq!(format_f64(1e21), "1000000000000000000000");
    }
}
