//! The reorder policy file an operator edits (`BO_REORDER_POLICY_FILE`, TOML; `deploy/reorder-policies.toml`
//! is the documented example). Parsing and checking are pure; [`Watched`] re-reads the file when it changes,
//! so a change takes effect without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::policy::{Partial, Policy};

/// The file's contents: the default policy's fields, and one entry per SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub default: Partial,
    #[serde(default)]
    pub sku: BTreeMap<String, Partial>,
}

impl PolicyFile {
    /// Parses and checks a file. The error names the line (syntax) or the SKU and field (values), so an
    /// operator can fix it.
    pub fn parse(text: &str, builtin: &Policy) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let default = file.default.over(builtin);
        let mut problems: Vec<String> = default
            .problems()
            .into_iter()
            .map(|p| format!("[default]: {p}"))
            .collect();
        for (sku, entry) in &file.sku {
            if sku.trim().is_empty() {
                problems.push("[sku.\"\"]: a SKU entry needs a SKU".to_string());
            }
            problems.extend(
                entry
                    .over(&default)
                    .problems()
                    .into_iter()
                    .map(|p| format!("[sku.{sku:?}]: {p}")),
            );
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The default policy: the file's `[default]` over the built-in one.
    pub fn default_policy(&self, builtin: &Policy) -> Policy {
        self.default.over(builtin)
    }
}

/// A policy file and when it was read; [`refresh`](Self::refresh) reads it again when it changed.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    modified: Option<SystemTime>,
    pub file: PolicyFile,
}

impl Watched {
    /// Reads the file; an unreadable or invalid file is an error (the service does not start with it).
    pub fn load(path: &Path, builtin: &Policy) -> Result<Self, String> {
        let (modified, file) = read(path, builtin)?;
        Ok(Self {
            path: path.to_path_buf(),
            modified,
            file,
        })
    }

    /// Reads the file again if it was modified. `Ok(true)`: new policies are in effect. An invalid file
    /// leaves the policies as they were and returns the error (logged by the caller); it is read again once
    /// it changes again.
    pub fn refresh(&mut self, builtin: &Policy) -> Result<bool, String> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified == self.modified {
            return Ok(false);
        }
        self.modified = modified;
        let (_, file) = read(&self.path, builtin)?;
        let changed = file != self.file;
        self.file = file;
        Ok(changed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read(path: &Path, builtin: &Policy) -> Result<(Option<SystemTime>, PolicyFile), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading reorder policies {}: {e}", path.display()))?;
    let file = PolicyFile::parse(&text, builtin)
        .map_err(|e| format!("reorder policies {}: {e}", path.display()))?;
    Ok((modified, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rule;

    fn builtin() -> Policy {
        Policy::cover("unassigned", 14)
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../deploy/reorder-policies.toml");
        let file = PolicyFile::parse(text, &builtin()).unwrap();
        assert!(!file.sku.is_empty());
        let default = file.default_policy(&builtin());
        for entry in file.sku.values() {
            assert!(entry.over(&default).problems().is_empty());
        }
    }

    #[test]
    fn entries_override_the_default() {
        let text = r#"
            [default]
            lead_time_days = 10
            urgent_shortage = 100

            [sku."SKU-A"]
            supplier = "ACME"
            pack_size = 12
            moq = 48
            rule = "min_max"
            min = 10
            max = 60
        "#;
        let file = PolicyFile::parse(text, &builtin()).unwrap();
        let default = file.default_policy(&builtin());
        assert_eq!(default.lead_time_days, 10);
        assert_eq!(
            file.sku["SKU-A"].over(&default),
            Policy {
                supplier_id: "ACME".into(),
                lead_time_days: 10,
                pack_size: 12,
                min_order_quantity: 48,
                rule: Rule::MinMax { min: 10, max: 60 },
                safety_stock: 0,
                urgent_shortage: 100,
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let error = PolicyFile::parse("[sku.A]\npack_size = 0\n", &builtin()).unwrap_err();
        assert_eq!(error, "[sku.\"A\"]: pack_size: must be positive, got 0");
        let error = PolicyFile::parse("[sku.A]\npack = 6\n", &builtin()).unwrap_err();
        assert!(error.contains("unknown field `pack`"), "{error}");
        let error = PolicyFile::parse("[sku.A]\nrule = \"fill\"\n", &builtin()).unwrap_err();
        assert!(error.contains("fill"), "{error}");
        let error = PolicyFile::parse("[default]\nsupplier = \"\"\n", &builtin()).unwrap_err();
        assert_eq!(error, "[default]: supplier: is missing");
        let error = PolicyFile::parse("[sku.A\n", &builtin()).unwrap_err();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn values_beyond_the_limits_are_named_with_their_sku() {
        let error = PolicyFile::parse(
            "[sku.A]\npack_size = 1000000001\nsafety_stock = 9223372036854775807\n",
            &builtin(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "[sku.\"A\"]: pack_size: 1000000001 is more than 1000000000; \
             [sku.\"A\"]: safety_stock: 9223372036854775807 is more than 1000000000"
        );
        let error = PolicyFile::parse(
            "[sku.B]\nrule = \"min_max\"\nmin = 5\nmax = 1000000001\n",
            &builtin(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "[sku.\"B\"]: max: 1000000001 is more than 1000000000"
        );
        let error =
            PolicyFile::parse("[default]\nlead_time_days = 3651\n", &builtin()).unwrap_err();
        assert_eq!(
            error,
            "[default]: lead_time_days: 3651 days is outside 0..=3650"
        );
        let text = format!("[sku.C]\nsupplier = \"{}\"\n", "S".repeat(129));
        let error = PolicyFile::parse(&text, &builtin()).unwrap_err();
        assert!(
            error.starts_with("[sku.\"C\"]: supplier: \"SSS") && error.contains("at most 128"),
            "{error}"
        );
        let text =
            "[sku.D]\nmoq = 1000000000\npack_size = 1000000000\nurgent_shortage = 1000000000\n";
        assert!(PolicyFile::parse(text, &builtin()).is_ok());
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_is_not_taken() {
        let dir = std::env::temp_dir().join(format!("bo-policies-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policies.toml");
        std::fs::write(&path, "[sku.A]\npack_size = 6\n").unwrap();
        let mut watched = Watched::load(&path, &builtin()).unwrap();
        assert_eq!(watched.refresh(&builtin()), Ok(false));

        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(&path, "[sku.A]\npack_size = 12\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(watched.refresh(&builtin()), Ok(true));
        assert_eq!(watched.file.sku["A"].pack_size, Some(12));

        std::fs::write(&path, "[sku.A]\npack_size = -1\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(watched.refresh(&builtin()).is_err());
        assert_eq!(watched.file.sku["A"].pack_size, Some(12));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
