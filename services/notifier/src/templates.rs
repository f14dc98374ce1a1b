//! The templates messages are rendered from (minijinja): the shipped defaults (`templates/`, built in), any
//! of which an operator's directory (`BO_TEMPLATES_DIR`) overrides file by file, and which it may extend with
//! locales of its own. Every template is checked at start-up by rendering it for every kind of message, so a
//! broken file stops the service with its name instead of failing a customer's message later.
//!
//! Files are `<locale>/<kind>.<part>.j2`: `<kind>` is an event kind in lower case (`backordered`,
//! `eta_changed`, ...) or `update` (several kinds in one message), `<part>` is `subject`, `txt`, `html` or
//! `sms`. Files starting with `_` are shared pieces (layouts, macros). A locale falls back file by file
//! (`de-at` → `de` → `en`). `.html` templates escape what they print; unknown variables are errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use crate::locale;

/// The kinds a template exists for, as they appear in file names.
pub const KINDS: [&str; 9] = [
    "backordered",
    "preordered",
    "eta_changed",
    "ready_to_ship",
    "shipped",
    "completed",
    "cancelled",
    "delay_consent_required",
    "update",
];

/// The parts of a message, as they appear in file names.
pub const PARTS: [&str; 4] = ["subject", "txt", "html", "sms"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {detail}")]
    Invalid { name: String, detail: String },
    #[error("reading templates from {path}: {detail}")]
    Io { path: String, detail: String },
}

pub struct Templates {
    env: Environment<'static>,
    /// The locale directories that have templates.
    locales: BTreeSet<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Templates({:?})", self.locales)
    }
}

impl Templates {
    /// The shipped templates only.
    pub fn shipped() -> Result<Self, TemplateError> {
        Self::load(None)
    }

    /// The shipped templates, overridden and extended by the `.j2` files in `<dir>/<locale>/`.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut sources: BTreeMap<String, String> = crate::defaults::TEMPLATES
            .iter()
            .map(|(name, source)| (name.to_string(), source.to_string()))
            .collect();
        if let Some(dir) = dir {
            sources.extend(read_dir(dir)?);
        }
        Self::from_sources(sources)
    }

    /// Templates from (name, source) pairs, checked.
    pub fn from_sources(sources: BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("date", date_filter);
        env.add_filter("short_date", short_date_filter);
        env.add_filter("number", number_filter);
        let mut locales = BTreeSet::new();
        for (name, source) in sources {
            if let Some((dir, _)) = name.split_once('/') {
                locales.insert(dir.to_string());
            }
            env.add_template_owned(name.clone(), source)
                .map_err(|e| invalid(&name, &e))?;
        }
        let templates = Self { env, locales };
        for part in PARTS {
            for kind in KINDS {
                let fallback = format!("{}/{kind}.{part}.j2", locale::FALLBACK);
                if templates.env.get_template(&fallback).is_err() {
                    return Err(TemplateError::Invalid {
                        name: fallback,
                        detail: "missing: every kind needs an English template to fall back to"
                            .into(),
                    });
                }
            }
        }
        templates.check()?;
        Ok(templates)
    }

    /// Renders every template of every locale for sample messages of its kind.
    fn check(&self) -> Result<(), TemplateError> {
        for dir in &self.locales {
            for kind in KINDS {
                for part in PARTS {
                    let name = format!("{dir}/{kind}.{part}.j2");
                    if self.env.get_template(&name).is_err() {
                        continue;
                    }
                    for context in crate::context::samples(kind, dir) {
                        self.render(&name, context)
                            .map_err(|e| invalid(&name, &e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The locale directories that have templates.
    pub fn locales(&self) -> impl Iterator<Item = &str> {
        self.locales.iter().map(String::as_str)
    }

    /// The template for `kind` and `part` in the customer's `locale`, falling back file by file to English:
    /// its name and the locale directory it came from.
    pub fn pick(&self, locale: &str, kind: &str, part: &str) -> (String, String) {
        for dir in locale::candidates(locale) {
            let name = format!("{dir}/{kind}.{part}.j2");
            if self.env.get_template(&name).is_ok() {
                return (name, dir);
            }
        }
        // `from_sources` made sure the English one exists.
        (
            format!("{}/{kind}.{part}.j2", locale::FALLBACK),
            locale::FALLBACK.to_string(),
        )
    }

    pub fn render(&self, name: &str, context: Value) -> Result<String, Error> {
        self.env.get_template(name)?.render(context)
    }
}

fn invalid(name: &str, error: &Error) -> TemplateError {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        detail.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    TemplateError::Invalid {
        name: name.to_string(),
        detail,
    }
}

/// `<dir>/<locale>/*.j2` as (name, source).
fn read_dir(dir: &Path) -> Result<BTreeMap<String, String>, TemplateError> {
    let io = |path: &Path, e: std::io::Error| TemplateError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(locale) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let locale = locale.to_ascii_lowercase().replace('_', "-");
        for file in std::fs::read_dir(&path).map_err(|e| io(&path, e))? {
            let file = file.map_err(|e| io(&path, e))?.path();
            let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".j2") || !file.is_file() {
                continue;
            }
            let source = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
            out.insert(format!("{locale}/{name}"), source);
        }
    }
    Ok(out)
}

/// The language of the template being rendered (the context's `lang`).
fn language(state: &State) -> String {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| locale::FALLBACK.to_string())
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{value:?} is not an RFC 3339 time: {e}"),
            )
        })
}

/// `{{ eta|date }}`: `December 1, 2026` / `1. Dezember 2026`.
fn date_filter(state: &State, value: String) -> Result<String, Error> {
    Ok(locale::long_date(
        locale::language(&language(state)),
        parse_time(&value)?,
    ))
}

/// `{{ eta|short_date }}`: `Dec 1, 2026` / `01.12.2026`.
fn short_date_filter(state: &State, value: String) -> Result<String, Error> {
    Ok(locale::short_date(
        locale::language(&language(state)),
        parse_time(&value)?,
    ))
}

/// `{{ n|number }}`: `1,234` / `1.234`.
fn number_filter(state: &State, value: i64) -> String {
    locale::number(locale::language(&language(state)), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_load_and_cover_every_kind_in_both_languages() {
        let templates = Templates::shipped().unwrap();
        assert!(templates.locales().any(|l| l == "en"));
        assert!(templates.locales().any(|l| l == "de"));
        for dir in ["en", "de"] {
            for kind in KINDS {
                for part in PARTS {
                    let (name, from) = templates.pick(dir, kind, part);
                    assert_eq!(from, dir, "{name}");
                }
            }
        }
        assert_eq!(templates.pick("de-AT", "shipped", "txt").1, "de");
        assert_eq!(templates.pick("fr-FR", "shipped", "txt").1, "en");
    }

    #[test]
    fn a_broken_template_is_refused_with_its_name() {
        let mut sources: BTreeMap<String, String> = crate::defaults::TEMPLATES
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        sources.insert("de/shipped.txt.j2".into(), "{% if %}".into());
        let error = Templates::from_sources(sources.clone())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("template de/shipped.txt.j2:"), "{error}");

        sources.insert("de/shipped.txt.j2".into(), "{{ no_such_thing }}".into());
        let error = Templates::from_sources(sources.clone())
            .unwrap_err()
            .to_string();
        assert!(error.contains("de/shipped.txt.j2"), "{error}");
        assert!(error.contains("undefined"), "{error}");

        sources.remove("de/shipped.txt.j2");
        sources.remove("en/shipped.sms.j2");
        let error = Templates::from_sources(sources).unwrap_err().to_string();
        assert!(error.contains("en/shipped.sms.j2: missing"), "{error}");
    }

    #[test]
    fn an_operator_directory_overrides_per_file_and_adds_locales() {
        let dir = std::env::temp_dir().join(format!("bo-templates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("de")).unwrap();
        std::fs::create_dir_all(dir.join("fr")).unwrap();
        std::fs::write(
            dir.join("de/shipped.subject.j2"),
            "Unterwegs: {{ order_id }}",
        )
        .unwrap();
        std::fs::write(
            dir.join("fr/shipped.subject.j2"),
            "Votre commande {{ order_id }} est en route",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let templates = Templates::load(Some(&dir)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(templates.pick("fr", "shipped", "subject").1, "fr");
        assert_eq!(templates.pick("fr", "shipped", "txt").1, "en");
        let context = minijinja::context!(order_id => "SO-1", lang => "de");
        assert_eq!(
            templates.render("de/shipped.subject.j2", context).unwrap(),
            "Unterwegs: SO-1"
        );
    }

    #[test]
    #[cfg(unix)]
    fn a_config_map_volume_gives_its_locales_and_not_its_hidden_folders() {
        // The kubelet's layout (deploy/k8s/notifier.yaml): the files in a timestamped folder, `..data` linking
        // to it, and a link per top-level entry through `..data`; the hidden folders hold locale folders, not
        // templates, so they add nothing.
        let dir = std::env::temp_dir().join(format!("bo-templates-cm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stamped = dir.join("..2026_12_02_10_00_00.123456789");
        std::fs::create_dir_all(stamped.join("fr")).unwrap();
        std::fs::write(
            stamped.join("fr/shipped.subject.j2"),
            "Votre commande {{ order_id }} est en route",
        )
        .unwrap();
        std::os::unix::fs::symlink("..2026_12_02_10_00_00.123456789", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/fr", dir.join("fr")).unwrap();
        let templates = Templates::load(Some(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        let templates = templates.unwrap();
        assert_eq!(templates.pick("fr", "shipped", "subject").1, "fr");
        let locales: Vec<&str> = templates.locales().collect();
        assert!(locales.iter().all(|l| !l.starts_with('.')), "{locales:?}");
        assert!(locales.contains(&"fr"), "{locales:?}");
    }
}
