//! SMS text within GSM-7: characters outside the GSM 03.38 alphabet are transliterated or dropped, the
//! extension characters count twice, and a text longer than two segments is cut at a word. Pure, no I/O.

/// One segment holds 160 GSM-7 units; a message of several segments holds 153 per segment.
pub const SINGLE_SEGMENT: usize = 160;
pub const MULTI_SEGMENT: usize = 153;
/// The most segments an SMS may take.
pub const MAX_SEGMENTS: usize = 2;
/// The most GSM-7 units an SMS may take: two segments.
pub const MAX_UNITS: usize = MULTI_SEGMENT * MAX_SEGMENTS;

const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const EXTENSION: &str = "^{}\\[~]|€";

/// GSM-7 units `c` takes: 1 (basic alphabet), 2 (extension table), `None` (not GSM-7).
pub fn units_of(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// GSM-7 units of a text that is GSM-7 already (see [`to_gsm7`]); other characters count 2.
pub fn units(text: &str) -> usize {
    text.chars().map(|c| units_of(c).unwrap_or(2)).sum()
}

/// Segments a GSM-7 text of `units` takes.
pub fn segments(units: usize) -> usize {
    if units <= SINGLE_SEGMENT {
        1
    } else {
        units.div_ceil(MULTI_SEGMENT)
    }
}

/// What a character outside GSM-7 becomes: a close letter or mark, or nothing.
fn transliterate(c: char) -> &'static str {
    match c {
        'á' | 'â' | 'ã' | 'ā' | 'ă' | 'ą' => "a",
        'Á' | 'Â' | 'À' | 'Ã' | 'Ā' | 'Ă' | 'Ą' => "A",
        'ç' | 'ć' | 'č' => "c",
        'Ć' | 'Č' => "C",
        'ď' => "d",
        'Ď' | 'Đ' => "D",
        'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'Ê' | 'Ë' | 'È' | 'Ē' | 'Ę' | 'Ě' => "E",
        'í' | 'î' | 'ï' | 'ī' => "i",
        'Í' | 'Î' | 'Ï' | 'Ì' | 'Ī' => "I",
        'ł' => "l",
        'Ł' => "L",
        'ń' | 'ň' => "n",
        'Ń' | 'Ň' => "N",
        'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'Ó' | 'Ô' | 'Ò' | 'Õ' | 'Ō' | 'Ő' => "O",
        'ř' => "r",
        'Ř' => "R",
        'ś' | 'š' | 'ş' => "s",
        'Ś' | 'Š' | 'Ş' => "S",
        'ť' | 'ţ' => "t",
        'Ť' | 'Ţ' => "T",
        'ú' | 'û' | 'ū' | 'ů' | 'ű' => "u",
        'Ú' | 'Û' | 'Ù' | 'Ū' | 'Ů' | 'Ű' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'œ' => "oe",
        'Œ' => "OE",
        '‘' | '’' | '‚' | '`' | '´' => "'",
        '“' | '”' | '„' | '«' | '»' => "\"",
        '–' | '—' | '‐' | '−' => "-",
        '…' => "...",
        '\t' | '\u{a0}' | '\u{202f}' => " ",
        _ => "",
    }
}

/// `text` in the GSM-7 alphabet: its characters kept, the others transliterated or dropped.
pub fn to_gsm7(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if units_of(c).is_some() {
            out.push(c);
        } else {
            out.push_str(transliterate(c));
        }
    }
    out
}

/// The SMS text for a rendered template: GSM-7, whitespace (newlines included) collapsed to single spaces,
/// and at most [`MAX_UNITS`] units; a longer text is cut at the last word that leaves room for "...".
pub fn fit(text: &str) -> String {
    fit_within(text, MAX_UNITS)
}

/// [`fit`] to at most `max` units.
pub fn fit_within(text: &str, max: usize) -> String {
    let gsm = to_gsm7(text);
    let text = gsm.split_whitespace().collect::<Vec<_>>().join(" ");
    if units(&text) <= max {
        return text;
    }
    const ELLIPSIS: &str = "...";
    let Some(room) = max.checked_sub(ELLIPSIS.len()) else {
        return String::new();
    };
    // The longest prefix that fits in `room` units.
    let mut used = 0;
    let mut end = 0;
    for (at, c) in text.char_indices() {
        let u = units_of(c).unwrap_or(2);
        if used + u > room {
            break;
        }
        used += u;
        end = at + c.len_utf8();
    }
    let head = &text[..end];
    let next_is_space = text[end..].starts_with(' ');
    let cut = if next_is_space {
        head
    } else {
        match head.rfind(' ') {
            Some(at) if at > 0 => &head[..at],
            _ => head,
        }
    };
    let cut = cut.trim_end_matches([' ', ',', ';', ':', '.', '-', '(']);
    format!("{cut}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_counts_extension_characters_twice() {
        assert_eq!(units("abc"), 3);
        assert_eq!(units("äöüßÄÖÜ"), 7);
        assert_eq!(units("€[]"), 6);
        assert_eq!(units(&"a".repeat(160)), 160);
        assert_eq!(segments(160), 1);
        assert_eq!(segments(161), 2);
        assert_eq!(segments(306), 2);
        assert_eq!(segments(307), 3);
    }

    #[test]
    fn other_characters_are_transliterated_or_dropped() {
        assert_eq!(
            to_gsm7("Crème brûlée „gut“ – 5 € 😀"),
            "Crème brulée \"gut\" - 5 € "
        );
        assert_eq!(to_gsm7("Łódź…"), "Lodz...");
        assert_eq!(to_gsm7("日本"), "");
        assert_eq!(to_gsm7("Grüße"), "Grüße");
    }

    #[test]
    fn a_long_text_is_cut_at_a_word() {
        assert_eq!(fit_within("abc def ghi", 11), "abc def ghi");
        assert_eq!(fit_within("abc def ghi", 10), "abc def...");
        assert_eq!(fit_within("abc, def ghi", 9), "abc...");
        assert_eq!(fit_within("abcdefghij", 8), "abcde...");
        assert_eq!(fit_within("a  b\n\nc", 10), "a b c");
        assert_eq!(fit_within("€€€€€", 7), "€€...");
        assert_eq!(fit_within("abc", 2), "");
    }

    proptest::proptest! {
        #[test]
        fn fit_never_exceeds_two_segments_and_keeps_a_prefix(text in "[a-zäß€😀áé\\[ ,.\n]{0,700}") {
            let out = fit(&text);
            proptest::prop_assert!(units(&out) <= MAX_UNITS, "{} units", units(&out));
            proptest::prop_assert!(segments(units(&out)) <= MAX_SEGMENTS);
            proptest::prop_assert!(out.chars().all(|c| units_of(c).is_some()));
            let normal = to_gsm7(&text).split_whitespace().collect::<Vec<_>>().join(" ");
            match out.strip_suffix("...") {
                Some(head) if units(&normal) > MAX_UNITS => proptest::prop_assert!(normal.starts_with(head)),
                _ => proptest::prop_assert_eq!(out, normal),
            }
        }
    }
}
