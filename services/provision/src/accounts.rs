//! The users' keys and the server configuration, on disk.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use backorder_runtime::Subjects;
use backorder_runtime::nats::Credentials;
use backorder_runtime::permissions::{self, ROLES, User};

/// The server configuration's file name in the output folder.
pub const SERVER_CONFIG: &str = "accounts.conf";

/// Writes a creds file per role (a new key unless the file exists, so running again changes no user) and
/// the server configuration; returns a line per file written.
pub fn write(dir: &Path, prefixes: &[Subjects]) -> anyhow::Result<Vec<String>> {
    create_private_dir(dir)?;
    let mut users = Vec::new();
    let mut lines = Vec::new();
    for role in ROLES {
        let path = creds_path(dir, role.name);
        let public_key = match std::fs::read_to_string(&path) {
            Ok(text) => Credentials::parse(&text)
                .map_err(|why| anyhow::anyhow!("{} {why}", path.display()))?
                .identity()
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = nkeys::KeyPair::new_user();
                let seed = pair
                    .seed()
                    .map_err(|e| anyhow::anyhow!("making a key: {e}"))?;
                write_private(&path, &creds_file(role.name, &seed, &pair.public_key()))?;
                lines.push(format!("wrote {} (new key)", path.display()));
                pair.public_key()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        users.push(User {
            role: role.name,
            public_key,
        });
    }
    let config = dir.join(SERVER_CONFIG);
    write_private(&config, &permissions::server_config(&users, prefixes))?;
    lines.push(format!(
        "wrote {} ({} users)",
        config.display(),
        users.len()
    ));
    Ok(lines)
}

pub fn creds_path(dir: &Path, role: &str) -> PathBuf {
    dir.join(format!("{role}.creds"))
}

/// A creds file: the seed between the markers NATS tools use, and what the role is.
fn creds_file(role: &str, seed: &str, public_key: &str) -> String {
    format!(
        "# NATS credentials of the backorder role `{role}` (user {public_key}).\n\
         # Secret: whoever holds this file acts as {role}. Clients take their replies on\n\
         # _INBOX.{public_key}.> (set it as the client's inbox prefix).\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

/// Every role's permissions as text, for people.
pub fn matrix(prefixes: &[Subjects], only: Option<&str>) -> anyhow::Result<String> {
    let mut out = String::new();
    for role in ROLES.iter().filter(|r| only.is_none_or(|o| o == r.name)) {
        let p = permissions::permissions(role.name, prefixes, "_INBOX.<its key>")
            .expect("a role of ROLES");
        out.push_str(&format!("{}: {}\n", role.name, role.about));
        out.push_str(&format!("  publish:   {}\n", p.publish.join(" ")));
        out.push_str(&format!("  subscribe: {}\n", p.subscribe.join(" ")));
        if p.allow_responses {
            out.push_str("  answers requests (allow_responses)\n");
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "no role {:?}; the roles are {}",
            only.unwrap_or_default(),
            ROLES.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `text` to `path` readable by its owner only, through a temporary file, so a reader never sees half
/// a file.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_again_keeps_every_key_and_the_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let prefixes = [Subjects::new("bo").unwrap()];
        write(dir.path(), &prefixes).unwrap();
        let config = std::fs::read_to_string(dir.path().join(SERVER_CONFIG)).unwrap();
        let again = write(dir.path(), &prefixes).unwrap();
        assert_eq!(
            again.len(),
            1,
            "only the configuration is written again: {again:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SERVER_CONFIG)).unwrap(),
            config
        );
        for role in ROLES {
            let creds = std::fs::read_to_string(creds_path(dir.path(), role.name)).unwrap();
            let key = Credentials::parse(&creds).unwrap().identity().unwrap();
            assert!(
                config.contains(&key),
                "{} is not in the configuration",
                role.name
            );
            let Credentials::Nkey(seed) = Credentials::parse(&creds).unwrap() else {
                panic!("{} holds no seed", role.name)
            };
            assert!(
                !config.contains(&seed),
                "the seed of {} is in the configuration",
                role.name
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(creds_path(dir.path(), role.name))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{} is readable by others", role.name);
            }
        }
    }

    #[test]
    fn an_unknown_role_is_named_with_the_known_ones() {
        let error = matrix(&[Subjects::new("bo").unwrap()], Some("nobody"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nobody") && error.contains("gateway"),
            "{error}"
        );
    }
}
