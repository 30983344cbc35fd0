//! `metadata_props` of the exported files.
//!
//! Detectors get Ultralytics' keys in Ultralytics' order with values formatted as Python's
//! `str()` of them (what its exporter writes and what `AutoBackend` parses back with
//! `ast.literal_eval`): `stride` `32`, `imgsz` `[256, 256]`, `names` `{0: 'scratch', 1: 'dent'}`,
//! `args` `{'batch': 1, 'data': None, …}`, booleans `False`/`True`, `None`. Classifiers get
//! torchvision-style keys with JSON values (`names`, `preprocess`, `imgsz`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Python's `repr()` of a `str`: single quotes unless the text has a single quote and no
/// double quote; backslash, the quote and control characters escaped.
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `str()` of Ultralytics' `names` dict: `{0: 'scratch', 1: 'dent'}`.
pub fn py_names_dict(names: &[String]) -> String {
    let items: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: {}", py_str_repr(n)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Python `str()` of a list of ints: `[256, 256]`.
pub fn py_int_list(values: &[usize]) -> String {
    let items: Vec<String> = values.iter().map(usize::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// Python `str()` of a bool.
pub fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The current time as Python's `datetime.now().astimezone().isoformat()` prints it, in UTC:
/// `2025-05-01T12:34:56.789012+00:00`.
pub fn iso_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    iso_utc(now.as_secs() as i64, now.subsec_micros())
}

/// Seconds since the Unix epoch (and microseconds) as an ISO 8601 UTC timestamp with
/// microseconds (left out when zero, as Python does).
pub fn iso_utc(secs: i64, micros: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let frac = if micros > 0 {
        format!(".{micros:06}")
    } else {
        String::new()
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{frac}+00:00")
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        assert_eq!(
            py_names_dict(&["scratch".into(), "dent".into(), "ng".into()]),
            "{0: 'scratch', 1: 'dent', 2: 'ng'}"
        );
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_str_repr("é\\"), "'é\\\\'");
        assert_eq!(py_int_list(&[256, 160]), "[256, 160]");
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso_utc(0, 0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            iso_utc(1_709_210_096, 5),
            "2024-02-29T12:34:56.000005+00:00"
        );
    }
}
