//! The pages, as maud templates (escaped by default): one module per page, the frame they share here.

pub mod deadletters;
pub mod kpis;
pub mod order;
pub mod sku;
pub mod worklist;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::api::Failure;

const STYLE: &str = include_str!("../style.css");

/// The section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Worklist,
    Kpis,
    DeadLetters,
    None,
}

/// What every page knows about where it runs.
pub struct Frame<'a> {
    pub prefix: &'a str,
    /// `BO_CONSOLE_TOKEN` is set: actions are possible.
    pub actions_enabled: bool,
    /// The browser's cookie holds the token: forms need not ask for it.
    pub token_remembered: bool,
    /// The operator's name the browser remembers.
    pub operator: String,
}

pub fn layout(frame: &Frame, section: Section, title: &str, body: Markup) -> Markup {
    let nav = [
        (Section::Worklist, "/", "Worklist"),
        (Section::Kpis, "/kpis", "KPIs"),
        (Section::DeadLetters, "/deadletters", "Dead letters"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Backorder desk" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header class="top" {
                    a class="brand" href="/" {
                        span class="logo" aria-hidden="true" { "◧" }
                        "Backorder desk"
                    }
                    nav {
                        @for (s, href, label) in nav {
                            a href=(href) class=[(s == section).then_some("active")] { (label) }
                        }
                    }
                    form class="find" action="/find" method="get" role="search" {
                        input type="search" name="q" placeholder="Order, SKU or customer…" aria-label="Find an order, SKU or customer";
                    }
                    span class="prefix" title="BO_PREFIX: the system this console reads" { (frame.prefix) }
                }
                main { (body) }
                footer {
                    "Reads through the query API on " code { (frame.prefix) ".api.*" } ". "
                    @if frame.actions_enabled {
                        "Actions need the console token"
                        @if frame.token_remembered {
                            " (remembered by this browser · "
                            form class="inline" method="post" action="/forget" {
                                button class="link" type="submit" { "forget it" }
                            }
                            ")"
                        }
                        "."
                    } @else {
                        "Read-only: actions are off (no BO_CONSOLE_TOKEN)."
                    }
                }
            }
        }
    }
}

/// The heading of a page, with an optional line under it.
pub fn heading(title: Markup, sub: Option<Markup>) -> Markup {
    html! {
        div class="heading" {
            h1 { (title) }
            @if let Some(sub) = sub { p class="sub" { (sub) } }
        }
    }
}

/// A message box: `kind` is good, bad or info.
pub fn notice(kind: &str, title: &str, body: Markup) -> Markup {
    html! {
        div class={"notice " (kind)} role=(if kind == "bad" { "alert" } else { "status" }) {
            strong { (title) }
            " " (body)
        }
    }
}

/// What a failure from the API means for the person looking at the page.
pub fn failure_title(failure: &Failure) -> &'static str {
    match failure.status {
        400 => "The request was not understood",
        404 => "Not found",
        409 => "Not possible right now",
        503 => "The system does not answer",
        _ => "Something went wrong",
    }
}

/// A whole page for a failure: the API's words, and what to do next.
pub fn failure_page(frame: &Frame, section: Section, failure: &Failure) -> Markup {
    let title = failure_title(failure);
    layout(
        frame,
        section,
        title,
        html! {
            div class="error-page" {
                p class="code" { (failure.status) }
                h1 { (title) }
                p class="message" { (failure.message) }
                p {
                    @if failure.is_unavailable() {
                        "The console keeps trying; " a href="" { "reload" } " in a moment."
                    } @else {
                        a href="/" { "Back to the worklist" }
                    }
                }
            }
        },
    )
}

/// The operator fields of a form that changes state: the operator's name (remembered) and the token unless
/// the browser remembers it. Without a configured token, a note says actions are off.
pub fn credentials(frame: &Frame) -> Markup {
    html! {
        @if !frame.actions_enabled {
            p class="hint" { "Actions are off: the console runs without BO_CONSOLE_TOKEN." }
        }
        label {
            span { "Operator" }
            input type="text" name="operator" value=(frame.operator) required maxlength=(crate::auth::MAX_OPERATOR_LEN) autocomplete="username" placeholder="your name";
        }
        @if !frame.token_remembered {
            label {
                span { "Token" }
                input type="password" name="token" autocomplete="current-password" placeholder="BO_CONSOLE_TOKEN";
            }
        }
    }
}

/// A definition list of figures as cards.
pub fn cards(items: &[(&str, Markup)]) -> Markup {
    html! {
        div class="cards" {
            @for (label, value) in items {
                div class="card" {
                    div class="value" { (value) }
                    div class="label" { (label) }
                }
            }
        }
    }
}
