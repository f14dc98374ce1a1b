//! Locales: which template language a customer's BCP 47 locale falls back to, and dates and numbers written
//! the way that language writes them. Pure, no I/O.

use chrono::{DateTime, Datelike, Utc};

/// The language every locale falls back to last, and the one whose templates must all exist.
pub const FALLBACK: &str = "en";

/// The template directories to try for `locale`, most specific first: `de-AT` → `de-at`, `de`, `en`. Case and
/// `_` versus `-` do not matter; an empty or unreadable locale is English.
pub fn candidates(locale: &str) -> Vec<String> {
    let tag: String = locale
        .trim()
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let mut out = Vec::new();
    let parts: Vec<&str> = tag.split('-').filter(|p| !p.is_empty()).collect();
    for n in (1..=parts.len()).rev() {
        let candidate = parts[..n].join("-");
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    if !out.iter().any(|c| c == FALLBACK) {
        out.push(FALLBACK.to_string());
    }
    out
}

/// The language part of a template directory name (`de-at` → `de`).
pub fn language(dir: &str) -> &str {
    dir.split('-').next().unwrap_or(FALLBACK)
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];

/// A date in full: `December 1, 2026` (English), `1. Dezember 2026` (German). Other languages are written the
/// English way.
pub fn long_date(language: &str, at: DateTime<Utc>) -> String {
    let month = at.month0() as usize;
    match language {
        "de" => format!("{}. {} {}", at.day(), MONTHS_DE[month], at.year()),
        _ => format!("{} {}, {}", MONTHS_EN[month], at.day(), at.year()),
    }
}

/// A short date: `Dec 1, 2026` (English), `01.12.2026` (German).
pub fn short_date(language: &str, at: DateTime<Utc>) -> String {
    match language {
        "de" => at.format("%d.%m.%Y").to_string(),
        _ => format!(
            "{} {}, {}",
            &MONTHS_EN[at.month0() as usize][..3],
            at.day(),
            at.year()
        ),
    }
}

/// An integer with thousands grouped: `1,234,567` (English), `1.234.567` (German).
pub fn number(language: &str, n: i64) -> String {
    let separator = match language {
        "de" => '.',
        _ => ',',
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(separator);
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn locales_fall_back_to_their_language_then_english() {
        assert_eq!(candidates("de-AT"), ["de-at", "de", "en"]);
        assert_eq!(candidates("de_CH"), ["de-ch", "de", "en"]);
        assert_eq!(candidates("DE"), ["de", "en"]);
        assert_eq!(candidates("en-GB"), ["en-gb", "en"]);
        assert_eq!(candidates(""), ["en"]);
        assert_eq!(candidates("  "), ["en"]);
        assert_eq!(candidates("../etc"), ["etc", "en"]);
        assert_eq!(
            candidates("zh-Hant-TW"),
            ["zh-hant-tw", "zh-hant", "zh", "en"]
        );
        assert_eq!(language("de-at"), "de");
    }

    #[test]
    fn dates_and_numbers_per_language() {
        let at = Utc.with_ymd_and_hms(2026, 3, 7, 12, 0, 0).unwrap();
        assert_eq!(long_date("en", at), "March 7, 2026");
        assert_eq!(long_date("de", at), "7. März 2026");
        assert_eq!(long_date("fr", at), "March 7, 2026");
        assert_eq!(short_date("en", at), "Mar 7, 2026");
        assert_eq!(short_date("de", at), "07.03.2026");
        assert_eq!(number("en", 1_234_567), "1,234,567");
        assert_eq!(number("de", 1_234_567), "1.234.567");
        assert_eq!(number("de", 999), "999");
        assert_eq!(number("en", 1000), "1,000");
        assert_eq!(number("en", -12_345), "-12,345");
        assert_eq!(number("en", i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(number("en", 0), "0");
    }
}
