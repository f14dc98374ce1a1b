//! The token that guards every action that changes state (a replay, a re-prioritisation): typed once into a
//! form, then remembered in an HttpOnly, SameSite=Strict cookie. The cookie holds a digest of the token, not
//! the token; both are compared in constant time. Reads need no token.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

pub const TOKEN_COOKIE: &str = "bo_console_token";
pub const OPERATOR_COOKIE: &str = "bo_console_operator";
/// How long the browser remembers the token: a working month.
const REMEMBER_SECS: u32 = 30 * 24 * 3600;
pub const MAX_OPERATOR_LEN: usize = 64;

fn digest(token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"backorder-console/v1\0");
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

/// Equal byte strings, in a time that depends on their lengths only (both are digests here, so not even on
/// that).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the token cookie holds for `token`.
pub fn cookie_value(token: &str) -> String {
    hex(&digest(token))
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `BO_CONSOLE_TOKEN` is configured: the console only reads.
    Disabled,
    /// Neither the form nor a cookie carries a token.
    NoToken,
    WrongToken,
    /// The operator's name is missing or not a plain name.
    NoOperator,
    /// The form was posted from another site (or another port of this host): the remembered token must not
    /// let a page elsewhere act in the operator's name.
    CrossSite,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoOperator => 400,
            _ => 403,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Refusal::Disabled => "Actions are switched off",
            Refusal::NoToken => "The token is missing",
            Refusal::WrongToken => "The token does not match",
            Refusal::NoOperator => "Say who you are",
            Refusal::CrossSite => "Posted from another site",
        }
    }

    pub fn message(self) -> String {
        match self {
            Refusal::Disabled => "This console was started without BO_CONSOLE_TOKEN, so it only reads: nothing can be \
                 replayed or re-prioritised from here. To enable actions, start it with a secret of at least 12 \
                 characters, e.g. BO_CONSOLE_TOKEN=$(openssl rand -hex 16) console, and give that token to the \
                 operators."
                .into(),
            Refusal::NoToken => {
                "Enter the console token (BO_CONSOLE_TOKEN) in the form; the browser then remembers it.".into()
            }
            Refusal::WrongToken => "The token entered is not the console's token (BO_CONSOLE_TOKEN). Nothing was changed.".into(),
            Refusal::CrossSite => "This form was sent by a page that is not this console's own (its Origin or \
                 Sec-Fetch-Site says so). Nothing was changed; use the console's own pages."
                .into(),
            Refusal::NoOperator => format!(
                "Enter your name in the operator field (up to {MAX_OPERATOR_LEN} characters): it goes into the record of the change."
            ),
        }
    }
}

/// Leave to act: who acts, and whether the token came from the form (then the browser is to remember it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub operator: String,
    pub remember_token: bool,
}

/// Decides whether a form may change state: `configured` is `BO_CONSOLE_TOKEN`, `typed` the form's token
/// field, `remembered` the token cookie. A token typed wins over the cookie, so a wrong one is refused even
/// when a good cookie is there.
pub fn authorize(
    configured: Option<&str>,
    typed: &str,
    remembered: Option<&str>,
    operator: &str,
) -> Result<Grant, Refusal> {
    let configured = configured.ok_or(Refusal::Disabled)?;
    let typed = typed.trim();
    let remember_token = if !typed.is_empty() {
        if !constant_time_eq(&digest(typed), &digest(configured)) {
            return Err(Refusal::WrongToken);
        }
        true
    } else {
        let remembered = remembered.ok_or(Refusal::NoToken)?;
        let expected = digest(&cookie_value(configured));
        if !constant_time_eq(&digest(remembered), &expected) {
            return Err(Refusal::WrongToken);
        }
        false
    };
    let operator = operator.trim();
    if operator.is_empty()
        || operator.chars().count() > MAX_OPERATOR_LEN
        || operator.chars().any(char::is_control)
    {
        return Err(Refusal::NoOperator);
    }
    Ok(Grant {
        operator: operator.to_string(),
        remember_token,
    })
}

/// Whether the browser's cookie holds the configured token (then forms need not ask for it).
pub fn is_remembered(configured: Option<&str>, remembered: Option<&str>) -> bool {
    match (configured, remembered) {
        (Some(configured), Some(remembered)) => {
            constant_time_eq(&digest(remembered), &digest(&cookie_value(configured)))
        }
        _ => false,
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The operator's name remembered by the browser, for prefilling forms.
pub fn operator(headers: &HeaderMap) -> String {
    cookie(headers, OPERATOR_COOKIE)
        .map(|v| crate::query::decode(&v))
        .unwrap_or_default()
}

fn set_cookie(name: &str, value: &str, max_age: u32) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` values after a granted action.
pub fn remember(configured: &str, grant: &Grant) -> Vec<String> {
    let mut cookies = vec![set_cookie(
        OPERATOR_COOKIE,
        &crate::query::encode(&grant.operator),
        REMEMBER_SECS,
    )];
    if grant.remember_token {
        cookies.push(set_cookie(
            TOKEN_COOKIE,
            &cookie_value(configured),
            REMEMBER_SECS,
        ));
    }
    cookies
}

/// The `Set-Cookie` value that makes the browser forget the token.
pub fn forget() -> String {
    set_cookie(TOKEN_COOKIE, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "correct-horse-battery";

    #[test]
    fn without_a_configured_token_nothing_is_allowed() {
        assert_eq!(
            authorize(None, TOKEN, Some(&cookie_value(TOKEN)), "ann"),
            Err(Refusal::Disabled)
        );
        assert!(!is_remembered(None, Some(&cookie_value(TOKEN))));
        assert!(Refusal::Disabled.message().contains("BO_CONSOLE_TOKEN"));
    }

    #[test]
    fn a_typed_token_must_match_and_is_then_remembered() {
        assert_eq!(
            authorize(Some(TOKEN), &format!(" {TOKEN} "), None, " ann "),
            Ok(Grant {
                operator: "ann".into(),
                remember_token: true
            })
        );
        assert_eq!(
            authorize(Some(TOKEN), "correct-horse-batterz", None, "ann"),
            Err(Refusal::WrongToken)
        );
        // A wrong token typed is refused even beside a good cookie.
        assert_eq!(
            authorize(Some(TOKEN), "nope", Some(&cookie_value(TOKEN)), "ann"),
            Err(Refusal::WrongToken)
        );
        assert_eq!(
            authorize(Some(TOKEN), "", None, "ann"),
            Err(Refusal::NoToken)
        );
    }

    #[test]
    fn the_cookie_holds_a_digest_that_stands_for_the_token() {
        let value = cookie_value(TOKEN);
        assert!(!value.contains(TOKEN));
        assert_eq!(value.len(), 64);
        assert_eq!(
            authorize(Some(TOKEN), "", Some(&value), "ann"),
            Ok(Grant {
                operator: "ann".into(),
                remember_token: false
            })
        );
        // The token itself in the cookie is not the digest.
        assert_eq!(
            authorize(Some(TOKEN), "", Some(TOKEN), "ann"),
            Err(Refusal::WrongToken)
        );
        assert!(is_remembered(Some(TOKEN), Some(&value)));
        assert!(!is_remembered(Some("another-token-here"), Some(&value)));
    }

    #[test]
    fn the_operator_is_required_and_a_plain_name() {
        for bad in ["", "   ", "a\nb", &"x".repeat(MAX_OPERATOR_LEN + 1)] {
            assert_eq!(
                authorize(Some(TOKEN), TOKEN, None, bad),
                Err(Refusal::NoOperator),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cookies_are_http_only_same_site_strict_and_read_back() {
        let grant = Grant {
            operator: "Ann O'Neil".into(),
            remember_token: true,
        };
        let cookies = remember(TOKEN, &grant);
        assert_eq!(cookies.len(), 2);
        for c in &cookies {
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
        }
        let mut headers = HeaderMap::new();
        let pairs: Vec<&str> = cookies
            .iter()
            .map(|c| c.split(';').next().unwrap())
            .collect();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {}", pairs.join("; ")).parse().unwrap(),
        );
        assert_eq!(operator(&headers), "Ann O'Neil");
        assert_eq!(cookie(&headers, TOKEN_COOKIE), Some(cookie_value(TOKEN)));
        assert_eq!(cookie(&headers, "missing"), None);
        assert!(forget().contains("Max-Age=0"));
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}

/// Whether a state-changing request comes from the console's own pages. Browsers say where a request comes
/// from (`Sec-Fetch-Site`, else `Origin`); SameSite cookies alone do not tell two ports of one host apart. A
/// request with neither header (curl, a script holding the token) is not a browser's cross-site request.
pub fn same_origin(sec_fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    if let Some(site) = sec_fetch_site {
        return matches!(site, "same-origin" | "none");
    }
    match (origin, host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod origin_tests {
    use super::same_origin;

    #[test]
    fn only_the_consoles_own_pages_may_post() {
        let host = Some("127.0.0.1:8090");
        assert!(same_origin(Some("same-origin"), None, host));
        assert!(same_origin(Some("none"), None, host));
        assert!(!same_origin(
            Some("same-site"),
            Some("http://127.0.0.1:3000"),
            host
        ));
        assert!(!same_origin(Some("cross-site"), None, host));
        assert!(same_origin(None, Some("http://127.0.0.1:8090"), host));
        assert!(!same_origin(None, Some("http://127.0.0.1:3000"), host));
        assert!(!same_origin(None, Some("null"), host));
        assert!(same_origin(None, None, host));
    }
}
