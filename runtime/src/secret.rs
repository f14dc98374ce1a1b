//! Keeping secrets out of logs and error messages: a URL is shown only through [`mask_url`].

/// What a secret is shown as.
pub const MASK: &str = "***";

/// `text` with every password in it replaced by `***`, for logs and error messages:
///
/// - the password of a URL's user part: `postgres://app:s3cret@db:5432/shop` →
///   `postgres://app:***@db:5432/shop`; a user without a password stays (`postgres://app@db/shop`), except
///   under the NATS schemes (`nats`, `tls`, `ws`, `wss`), where a lone user part is a token: `nats://***@broker`;
/// - every URL of a comma-separated list (`nats://a:p@n1:4222,nats://b:q@n2:4222`), and a list of `user:pass@host`
///   without a scheme;
/// - the value of a `password=` (or `sslpassword=`) parameter, in a query string or a `key=value` string.
///
/// Anything else is left as it is, so a string that is not a URL comes back unchanged. A password with
/// characters a URL should have escaped (`/`, `?`, `#`, `@`) is still masked: the user part is taken to
/// run to the last `@` of the URL. The price is that an `@` later in a URL masks more than the password.
pub fn mask_url(text: &str) -> String {
    mask_password_parameters(&mask_user_parts(text))
}

/// The schemes whose user part alone is a secret (async-nats reads `nats://TOKEN@host` as a token).
const TOKEN_SCHEMES: [&str; 4] = ["nats", "tls", "ws", "wss"];

fn mask_user_parts(text: &str) -> String {
    let starts = url_starts(text);
    if starts.is_empty() {
        return mask_schemeless(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (i, &(scheme_start, authority_start)) in starts.iter().enumerate() {
        // This URL runs to the first whitespace or to where the next one's scheme begins.
        let next = starts.get(i + 1).map_or(text.len(), |&(s, _)| s);
        let end = text[authority_start..next]
            .find(char::is_whitespace)
            .map_or(next, |at| authority_start + at);
        let Some(at) = text[authority_start..end].rfind('@') else {
            continue;
        };
        let user_part = &text[authority_start..authority_start + at];
        let scheme = text[scheme_start..authority_start - 3].to_ascii_lowercase();
        let Some(masked) = masked_user_part(user_part, TOKEN_SCHEMES.contains(&scheme.as_str()))
        else {
            continue;
        };
        out.push_str(&text[copied..authority_start]);
        out.push_str(&masked);
        copied = authority_start + at;
    }
    out.push_str(&text[copied..]);
    out
}

/// `user:***`, or `***` for a lone token; `None` when there is nothing secret in it.
fn masked_user_part(user_part: &str, lone_user_is_secret: bool) -> Option<String> {
    match user_part.split_once(':') {
        Some((user, _)) => Some(format!("{user}:{MASK}")),
        None if lone_user_is_secret && !user_part.is_empty() => Some(MASK.to_string()),
        None => None,
    }
}

/// Where each `scheme://` of `text` begins, and where its authority (after the `//`) begins.
fn url_starts(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let colon = from + found;
        let mut start = colon;
        while start > 0 && is_scheme_byte(bytes[start - 1]) {
            start -= 1;
        }
        // A scheme begins with a letter: `1://` or a bare `://` is not a URL.
        while start < colon && !bytes[start].is_ascii_alphabetic() {
            start += 1;
        }
        if start < colon {
            starts.push((start, colon + 3));
        }
        from = colon + 3;
    }
    starts
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// `user:pass@host` items of a comma-separated list without schemes (async-nats takes `host:port` alone).
fn mask_schemeless(text: &str) -> String {
    if !text.contains('@') || text.contains(char::is_whitespace) {
        return text.to_string();
    }
    text.split(',')
        .map(|item| match item.rsplit_once('@') {
            Some((user_part, host)) if user_part.contains(':') && !user_part.contains('/') => {
                let masked = masked_user_part(user_part, false).unwrap_or_default();
                format!("{masked}@{host}")
            }
            _ => item.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The values of `...password=` parameters: in a query (`?password=x&...`) or a libpq key/value string
/// (`host=db password='x y'`).
fn mask_password_parameters(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0
            || matches!(bytes[i - 1], b'?' | b'&' | b';' | b',')
            || bytes[i - 1].is_ascii_whitespace();
        if !at_boundary || !is_key_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let key_end = i + bytes[i..].iter().take_while(|&&b| is_key_byte(b)).count();
        let is_password = bytes.get(key_end) == Some(&b'=')
            && text[i..key_end].to_ascii_lowercase().ends_with("password");
        if !is_password {
            i = key_end;
            continue;
        }
        let value_start = key_end + 1;
        let value_end = value_end(bytes, value_start);
        if value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(MASK);
            copied = value_end;
        }
        i = value_end.max(value_start);
    }
    out.push_str(&text[copied..]);
    out
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where a parameter's value ends: at `&` or whitespace, or after its closing quote when it is quoted.
fn value_end(bytes: &[u8], start: usize) -> usize {
    if bytes.get(start) == Some(&b'\'') {
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\'' => return i + 1,
                _ => i += 1,
            }
        }
        return bytes.len();
    }
    start
        + bytes[start..]
            .iter()
            .take_while(|&&b| b != b'&' && !b.is_ascii_whitespace())
            .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_of_urls_are_masked() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db.example.com:5432/shop?sslmode=verify-full"),
            "postgres://app:***@db.example.com:5432/shop?sslmode=verify-full"
        );
        assert_eq!(
            mask_url("nats://ann:pw@n1:4222,nats://bob:pw2@n2:4222"),
            "nats://ann:***@n1:4222,nats://bob:***@n2:4222"
        );
        assert_eq!(
            mask_url("postgres://app:@db/shop"),
            "postgres://app:***@db/shop"
        );
    }

    #[test]
    fn a_user_alone_is_kept_but_a_nats_token_is_not() {
        assert_eq!(mask_url("postgres://app@db/shop"), "postgres://app@db/shop");
        assert_eq!(
            mask_url("nats://s3cr3t-token@broker:4222"),
            "nats://***@broker:4222"
        );
        assert_eq!(
            mask_url("tls://tok@a:4222,nats://b:4222"),
            "tls://***@a:4222,nats://b:4222"
        );
    }

    #[test]
    fn passwords_that_a_url_should_have_escaped_are_masked_whole() {
        assert_eq!(
            mask_url("postgres://app:a/b?c#d@e@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            mask_url("postgres://app:pa,ss@db/shop"),
            "postgres://app:***@db/shop"
        );
    }

    #[test]
    fn password_parameters_are_masked() {
        assert_eq!(
            mask_url("postgres://db/shop?user=app&password=s3cret&sslmode=require"),
            "postgres://db/shop?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            mask_url("host=db user=app password='a b' sslpassword=k dbname=shop"),
            "host=db user=app password=*** sslpassword=*** dbname=shop"
        );
        assert_eq!(mask_url("password="), "password=");
    }

    #[test]
    fn urls_inside_a_sentence_are_masked() {
        assert_eq!(
            mask_url("cannot connect to postgres://app:s3cret@db/shop: refused"),
            "cannot connect to postgres://app:***@db/shop: refused"
        );
    }

    #[test]
    fn lists_without_a_scheme_are_masked() {
        assert_eq!(
            mask_url("u:p@host:4222,other:4222"),
            "u:***@host:4222,other:4222"
        );
    }

    #[test]
    fn what_is_not_a_url_is_unchanged() {
        for text in [
            "",
            "127.0.0.1:4222",
            "postgres://db:5432/shop",
            "ann@example.com",
            "not a url: user@host said no",
            "1://x:y@z",
            "://x:y@z",
            "passwords=",
        ] {
            assert_eq!(mask_url(text), text, "{text}");
        }
    }

    /// A password that cannot occur anywhere else in the generated URLs (`ZZ` and lower-case elsewhere).
    fn password() -> impl Strategy<Value = String> {
        "ZZ[A-Za-z0-9:/?#@,;&=%!$'()*+\\[\\]~._-]{0,24}"
            .prop_filter("no scheme inside", |p| !p.contains("://"))
    }

    fn url() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(vec!["postgres", "postgresql", "nats", "tls", "ws"]),
            "[a-z][a-z0-9_]{0,10}",
            password(),
            "[a-z0-9.-]{1,20}",
            1u16..,
            "[a-z0-9_]{0,10}",
            prop::option::of("sslmode=(require|verify-full)(&sslrootcert=/etc/ca\\.pem)?"),
        )
            .prop_map(|(scheme, user, password, host, port, db, query)| {
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                (
                    format!("{scheme}://{user}:{password}@{host}:{port}/{db}{query}"),
                    password,
                )
            })
    }

    proptest! {
        #[test]
        fn no_password_survives(urls in prop::collection::vec(url(), 1..4)) {
            let text = urls.iter().map(|(url, _)| url.as_str()).collect::<Vec<_>>().join(",");
            let masked = mask_url(&text);
            prop_assert!(!masked.contains("ZZ"), "{text} -> {masked}");
        }

        #[test]
        fn only_the_password_changes(
            user in "[a-z][a-z0-9_]{0,10}",
            password in "[A-Za-z0-9._~-]{1,24}",
            host in "[a-z0-9.-]{1,20}",
            port in 1u16..,
            db in "[a-z0-9_]{1,10}",
        ) {
            let url = format!("postgres://{user}:{password}@{host}:{port}/{db}?sslmode=verify-full");
            prop_assert_eq!(
                mask_url(&url),
                format!("postgres://{user}:***@{host}:{port}/{db}?sslmode=verify-full")
            );
        }

        #[test]
        fn text_without_credentials_is_unchanged(text in "[^@]{0,80}") {
            prop_assume!(!text.to_ascii_lowercase().contains("password"));
            prop_assert_eq!(mask_url(&text), text);
        }

        #[test]
        fn masking_twice_changes_nothing_more(urls in prop::collection::vec(url(), 1..4)) {
            let text = urls.iter().map(|(url, _)| url.as_str()).collect::<Vec<_>>().join(",");
            let once = mask_url(&text);
            prop_assert_eq!(mask_url(&once), once.clone());
        }
    }
}
