//! The deploy kit (`deploy/`) checked against the code, so the manifests cannot drift from the binaries: every
//! file there is parsed; the image builds and copies every shipped binary and runs as a non-root user; compose
//! and Kubernetes each run every service; each container sets only variables its binary reads (the binary's own
//! `env_vars()` list) and everything a deployment needs; every ConfigMap, Secret, volume and file referenced
//! exists; probes and health checks ask for routes the code serves, on the port the service binds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use backorder_runtime::vars::Var;
use serde_norway::Value;

/// The binaries the image ships.
const SHIPPED: [&str; 7] = [
    "order-intake",
    "allocation",
    "replenishment-trigger",
    "notifier",
    "backorder",
    "console",
    "backorder-provision",
];

/// The ones that run all the time in every deployment.
const SERVICES: [&str; 5] = [
    "order-intake",
    "allocation",
    "replenishment-trigger",
    "notifier",
    "console",
];

/// Each shipped binary's variables, from its crate.
fn env_vars(binary: &str) -> Vec<Var> {
    match binary {
        "order-intake" => order_intake::env_vars(),
        "allocation" => allocation::env_vars(),
        "replenishment-trigger" => replenishment_trigger::env_vars(),
        "notifier" => notifier::env_vars(),
        "backorder" => backorder::env_vars(),
        "console" => console::env_vars(),
        // It reads what every service reads (the NATS connection, the prefix, the replicas) and no more.
        "backorder-provision" => backorder_runtime::vars::COMMON.to_vec(),
        other => panic!("{other} is not a shipped binary"),
    }
}

/// The variable naming where a service serves its health routes and metrics.
fn serving_var(binary: &str) -> &'static str {
    if binary == "console" {
        "BO_CONSOLE_ADDR"
    } else {
        "BO_HTTP_ADDR"
    }
}

/// The NATS user each container connects as: the services as themselves, the provisioning step as `admin`,
/// the desk's CLI as `operator`.
fn role(binary: &str) -> &str {
    match binary {
        "backorder-provision" => "admin",
        "backorder" => "operator",
        service => service,
    }
}

fn root() -> PathBuf {
    // This crate is at tests/<crate>/.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate is two levels below the workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every document of a YAML file, anchors resolved and `<<` merge keys applied.
fn yaml_docs(relative: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    let text = read(relative);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{relative}: merge keys: {e}"));
            value
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml(relative: &str) -> Value {
    let mut docs = yaml_docs(relative);
    assert_eq!(docs.len(), 1, "{relative} should hold one YAML document");
    docs.remove(0)
}

/// A scalar as text (`3`, `"3"`, `true` alike).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn text_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn str_at(value: &Value, path: &[&str]) -> String {
    text_at(value, path)
        .map(scalar)
        .unwrap_or_else(|| panic!("no {} in {value:?}", path.join(".")))
}

fn seq(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        // Compose's shell form: words.
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(value) => seq(Some(value)).iter().map(scalar).collect(),
    }
}

/// The paths a router of the code answers: the `.route("...")` literals of its source.
fn routes(source: &str) -> BTreeSet<String> {
    let text = read(source);
    text.match_indices(".route(\"")
        .map(|(at, m)| {
            let rest = &text[at + m.len()..];
            rest[..rest.find('"').expect("a closed literal")].to_string()
        })
        .collect()
}

fn served_routes(binary: &str) -> BTreeSet<String> {
    if binary == "console" {
        routes("services/console/src/lib.rs")
    } else {
        routes("runtime/src/ops.rs")
    }
}

/// `host:port` or a URL's port.
fn port_of(address: &str) -> u16 {
    let after_scheme = address.split("://").last().unwrap_or(address);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// What one container runs and with which variables, wherever it is declared.
#[derive(Debug)]
struct Container {
    /// `compose service x`, `k8s Deployment/x`.
    place: String,
    binary: String,
    /// The binary and its arguments.
    command: Vec<String>,
    env: BTreeMap<String, String>,
    /// Mount target -> what is mounted there (a description the checks below understand).
    mounts: BTreeMap<String, Mount>,
}

#[derive(Debug, Clone)]
enum Mount {
    /// Files named after the NATS roles whose credentials are there.
    Creds(BTreeSet<String>),
    /// A ConfigMap's files: file name -> key.
    ConfigMap {
        files: BTreeMap<String, String>,
    },
    /// A file or folder of the repository (compose bind mounts), relative to the root.
    Repo(PathBuf),
    Other,
}

impl Container {
    fn vars(&self) -> Vec<Var> {
        env_vars(&self.binary)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// Only variables the binary reads, and everything a deployment of it needs.
    fn check_env(&self, problems: &mut Vec<String>) {
        let vars = self.vars();
        for name in self.env.keys() {
            if !vars.iter().any(|v| v.name == name) {
                problems.push(format!(
                    "{}: {name} is set but {} does not read it (not in its env_vars())",
                    self.place, self.binary
                ));
            }
        }
        if self.binary == "backorder-provision"
            && self.command.get(1).map(String::as_str) == Some("accounts")
        {
            // Writes files; connects to nothing.
            return;
        }
        let mut needed = vec!["NATS_URL", "NATS_CREDS"];
        let connects_as_service = SERVICES.contains(&self.binary.as_str());
        if connects_as_service {
            needed.push(serving_var(&self.binary));
            needed.push("BO_PROVISION");
        }
        if self.binary == "backorder-provision" {
            needed.push("BO_STREAM_REPLICAS");
        }
        // A default on the loopback interface (the database, NATS, where to listen) is wrong in a container.
        for var in &vars {
            let is_other_address =
                var.name.ends_with("_ADDR") && var.name != serving_var(&self.binary);
            if var.default.is_some_and(|d| d.contains("127.0.0.1")) && !is_other_address {
                needed.push(var.name);
            }
        }
        for name in needed {
            match self.get(name) {
                None => problems.push(format!(
                    "{}: {} needs {name} (no usable default in a container)",
                    self.place, self.binary
                )),
                Some(value) if value.contains("127.0.0.1") || value.contains("localhost") => {
                    problems.push(format!(
                        "{}: {name}={value} points at the container itself",
                        self.place
                    ))
                }
                Some(_) => {}
            }
        }
        if connects_as_service {
            if self.get("BO_PROVISION") != Some("false") {
                problems.push(format!(
                    "{}: BO_PROVISION must be false (provisioning is a step of its own, with the admin user)",
                    self.place
                ));
            }
            if let Some(addr) = self.get(serving_var(&self.binary))
                && !addr.starts_with("0.0.0.0:")
            {
                problems.push(format!(
                    "{}: {}={addr} must bind every interface (0.0.0.0:<port>) to be probed",
                    self.place,
                    serving_var(&self.binary)
                ));
            }
        }
        if self.binary == "backorder-provision" && self.get("BO_PROVISION").is_some() {
            problems.push(format!(
                "{}: BO_PROVISION means nothing to the provisioning step",
                self.place
            ));
        }
    }

    /// NATS_CREDS names a file of this container's own role, in a mount of credentials.
    fn check_creds(&self, problems: &mut Vec<String>) {
        let Some(path) = self.get("NATS_CREDS") else {
            return;
        };
        let role = role(&self.binary);
        let expected = format!("{role}.creds");
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        if file != expected {
            problems.push(format!(
                "{}: NATS_CREDS={path} should be the {role} user's {expected}",
                self.place
            ));
        }
        match self.mounts.get(dir) {
            Some(Mount::Creds(files)) if files.contains(file) => {
                if files.len() > 1 {
                    problems.push(format!(
                        "{}: the credentials mount {dir} holds {files:?}: only its own role's belongs there",
                        self.place
                    ));
                }
            }
            other => problems.push(format!(
                "{}: NATS_CREDS={path} but {dir} mounts {other:?}",
                self.place
            )),
        }
    }

    /// A variable naming a file or folder points into a mount that holds it.
    fn check_files(&self, problems: &mut Vec<String>) {
        if let Some(path) = self.get("BO_REORDER_POLICY_FILE") {
            let found = self.mounts.iter().find_map(|(target, mount)| {
                if path == target {
                    return Some(mount.clone());
                }
                let file = path.strip_prefix(target.as_str())?.strip_prefix('/')?;
                match mount {
                    Mount::ConfigMap { files, .. } if files.contains_key(file) => {
                        Some(mount.clone())
                    }
                    Mount::Repo(dir) => Some(Mount::Repo(dir.join(file))),
                    _ => None,
                }
            });
            match found {
                Some(Mount::Repo(file)) => {
                    let text = read(&file.to_string_lossy());
                    check_policy_file(&self.place, &text, problems);
                }
                Some(Mount::ConfigMap { .. }) => {} // checked with the ConfigMap
                other => problems.push(format!(
                    "{}: BO_REORDER_POLICY_FILE={path} is in no mount ({other:?}; mounts {:?})",
                    self.place, self.mounts
                )),
            }
        }
        if let Some(dir) = self.get("BO_TEMPLATES_DIR")
            && !matches!(
                self.mounts.get(dir),
                Some(Mount::ConfigMap { .. } | Mount::Repo(_))
            )
        {
            problems.push(format!(
                "{}: BO_TEMPLATES_DIR={dir} is not a mount",
                self.place
            ));
        }
    }

    fn serving_port(&self) -> Option<u16> {
        self.get(serving_var(&self.binary)).map(port_of)
    }
}

fn check_policy_file(place: &str, text: &str, problems: &mut Vec<String>) {
    let builtin = replenishment_trigger::policy::Policy::cover("unassigned", 14);
    if let Err(e) = replenishment_trigger::policy_file::PolicyFile::parse(text, &builtin) {
        problems.push(format!("{place}: the reorder policy file is refused: {e}"));
    }
}

fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "the deploy kit drifted from the code:\n- {}",
        problems.join("\n- ")
    );
}

// --- the Dockerfile -------------------------------------------------------------------------------------------

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let full = std::mem::take(&mut current);
                let (instruction, rest) = full.split_once(' ').unwrap_or((&full, ""));
                out.push((instruction.to_ascii_uppercase(), rest.trim().to_string()));
            }
        }
    }
    out
}

/// `ARG NAME=default` values.
fn dockerfile_args() -> BTreeMap<String, String> {
    dockerfile()
        .into_iter()
        .filter(|(i, _)| i == "ARG")
        .filter_map(|(_, rest)| {
            rest.split_once('=')
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

fn expand(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in args {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

/// The uid the image runs as.
fn image_uid() -> u32 {
    let args = dockerfile_args();
    let user = dockerfile()
        .into_iter()
        .rfind(|(i, _)| i == "USER")
        .map(|(_, rest)| expand(&rest, &args))
        .expect("the Dockerfile sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    uid.parse().unwrap_or_else(|_| {
        panic!("USER {user} should be a fixed numeric uid (Kubernetes' runAsNonRoot checks it)")
    })
}

/// The workspace's packages and the binaries each builds.
fn workspace_binaries() -> BTreeMap<String, String> {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("members");
    let mut binary_to_package = BTreeMap::new();
    for member in members {
        let dir = member.as_str().expect("a path");
        let package: toml::Table = read(&format!("{dir}/Cargo.toml"))
            .parse()
            .expect("a member's Cargo.toml parses");
        let name = package["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_string();
        let bins = package
            .get("bin")
            .and_then(|b| b.as_array())
            .cloned()
            .unwrap_or_default();
        for bin in &bins {
            binary_to_package.insert(
                bin["name"].as_str().expect("bin.name").to_string(),
                name.clone(),
            );
        }
        if bins.is_empty() && root().join(dir).join("src/main.rs").exists() {
            binary_to_package.insert(name.clone(), name.clone());
        }
        if let Ok(entries) = std::fs::read_dir(root().join(dir).join("src/bin")) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(bin) = file.strip_suffix(".rs") {
                    binary_to_package.insert(bin.to_string(), name.clone());
                }
            }
        }
    }
    binary_to_package
}

#[test]
fn the_image_builds_every_shipped_binary_and_runs_as_a_fixed_non_root_user() {
    let mut problems = Vec::new();
    let instructions = dockerfile();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, r)| r)
        .collect();
    let runtime = froms.last().expect("a FROM");
    let args = dockerfile_args();
    if !expand(runtime, &args).contains("-slim") {
        problems.push(format!(
            "the runtime stage ({runtime}) should be a slim Debian image"
        ));
    }
    let builds: Vec<&String> = instructions
        .iter()
        .filter(|(i, r)| i == "RUN" && r.contains("cargo build"))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        builds.len(),
        1,
        "one cargo build of the shipped binaries: {builds:?}"
    );
    let build_words: Vec<&str> = builds[0].split_whitespace().collect();
    let built: BTreeSet<&str> = build_words
        .windows(2)
        .filter(|w| w[0] == "-p" || w[0] == "--package")
        .map(|w| w[1])
        .collect();
    let packages = workspace_binaries();
    for binary in SHIPPED {
        match packages.get(binary) {
            None => problems.push(format!(
                "no workspace package builds the shipped binary {binary}"
            )),
            Some(package) if !built.contains(package.as_str()) => problems.push(format!(
                "the image's cargo build does not build package {package} ({binary})"
            )),
            Some(_) => {}
        }
        let copied = instructions.iter().any(|(i, r)| {
            i == "COPY" && r.contains("--from=") && r.ends_with(&format!("/usr/local/bin/{binary}"))
        });
        if !copied {
            problems.push(format!(
                "the image does not copy {binary} to /usr/local/bin"
            ));
        }
    }
    for package in &built {
        if !packages.values().any(|p| p == package) {
            problems.push(format!(
                "the image builds {package}, which is no workspace package"
            ));
        }
    }
    let uid = image_uid();
    if uid == 0 {
        problems.push("the image runs as root".into());
    }
    // Nothing secret in the image: no ENV or ARG named after a secret variable.
    let secrets: BTreeSet<&str> = SHIPPED
        .iter()
        .flat_map(|b| env_vars(b))
        .filter(|v| v.secret)
        .map(|v| v.name)
        .collect();
    for (instruction, rest) in &instructions {
        if (instruction == "ENV" || instruction == "ARG")
            && let Some(name) = secrets.iter().find(|s| rest.contains(*s))
        {
            problems.push(format!(
                "{instruction} {rest}: {name} is a secret and must not be baked into the image"
            ));
        }
    }
    // A file the image copies from the context exists.
    for (instruction, rest) in &instructions {
        if instruction == "COPY" && !rest.starts_with("--from") {
            let source = rest.split_whitespace().next().unwrap_or_default();
            if source != "." && !root().join(source).exists() {
                problems.push(format!("COPY {source}: no such file"));
            }
        }
    }
    fail_on(problems);
}

// --- compose ---------------------------------------------------------------------------------------------------

fn compose() -> Value {
    yaml("deploy/compose.yaml")
}

fn compose_services(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (scalar(k), v.clone()))
        .collect()
}

fn uses_our_image(service: &Value) -> bool {
    service
        .get("build")
        .is_some_and(|b| str_at(b, &["dockerfile"]).ends_with("deploy/Dockerfile"))
}

/// The binary a container of our image runs: its entrypoint or command, or the first shipped binary a shell
/// script calls.
fn binary_of(command: &[String]) -> (String, Vec<String>) {
    let first = command.first().cloned().unwrap_or_default();
    if SHIPPED.contains(&first.as_str()) {
        return (first, command.to_vec());
    }
    let script = command.join(" ");
    for line in script.lines() {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if let Some(word) = words.first()
            && SHIPPED.contains(&word.as_str())
        {
            return (word.clone(), words);
        }
    }
    panic!("{command:?} runs no shipped binary");
}

fn compose_container(name: &str, service: &Value, volumes: &[String]) -> Container {
    let mut command = strings(service.get("entrypoint"));
    command.extend(strings(service.get("command")));
    let (binary, command) = binary_of(&command);
    let env = match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Some(list) => strings(Some(list))
            .into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
    };
    let mut mounts = BTreeMap::new();
    for volume in seq(service.get("volumes")) {
        let (source, target, subpath) = match volume {
            Value::String(short) => {
                let parts: Vec<&str> = short.split(':').collect();
                (parts[0].to_string(), parts[1].to_string(), None)
            }
            long => (
                str_at(long, &["source"]),
                str_at(long, &["target"]),
                text_at(long, &["volume", "subpath"]).map(scalar),
            ),
        };
        let mount = if let Some(relative) = source.strip_prefix("./") {
            Mount::Repo(PathBuf::from("deploy").join(relative))
        } else if volumes.contains(&source) {
            match subpath.as_deref().and_then(|s| s.strip_prefix("creds/")) {
                // The accounts step puts each role's <role>.creds in creds/<role>/.
                Some(role) => Mount::Creds(BTreeSet::from([format!("{role}.creds")])),
                None => Mount::Other,
            }
        } else {
            panic!(
                "compose service {name}: volume source {source} is neither a file nor a declared volume"
            );
        };
        mounts.insert(target, mount);
    }
    Container {
        place: format!("compose service {name}"),
        binary,
        command,
        env,
        mounts,
    }
}

fn compose_containers() -> Vec<(String, Value, Container)> {
    let compose = compose();
    let volumes: Vec<String> = compose["volumes"]
        .as_mapping()
        .expect("volumes")
        .keys()
        .map(scalar)
        .collect();
    compose_services(&compose)
        .into_iter()
        .filter(|(_, service)| uses_our_image(service))
        .map(|(name, service)| {
            let container = compose_container(&name, &service, &volumes);
            (name, service, container)
        })
        .collect()
}

#[test]
fn compose_runs_every_service_with_its_own_credentials_and_the_variables_it_reads() {
    let mut problems = Vec::new();
    let containers = compose_containers();
    for binary in SERVICES {
        let running: Vec<_> = containers
            .iter()
            .filter(|(_, s, c)| c.binary == binary && s.get("profiles").is_none())
            .collect();
        if running.len() != 1 {
            problems.push(format!(
                "compose should run {binary} once (without a profile), runs it {}",
                running.len()
            ));
        }
    }
    let provisions: Vec<_> = containers
        .iter()
        .filter(|(_, _, c)| {
            c.binary == "backorder-provision"
                && c.command.get(1).map(String::as_str) == Some("streams")
        })
        .collect();
    assert_eq!(provisions.len(), 1, "compose provisions the streams once");
    let provision_name = &provisions[0].0;
    for (name, service, container) in &containers {
        container.check_env(&mut problems);
        container.check_creds(&mut problems);
        container.check_files(&mut problems);
        if let Some(user) = service.get("user").map(scalar)
            && (user == "0" || user.starts_with("root") || user.starts_with("0:"))
        {
            problems.push(format!("compose service {name} runs as root"));
        }
        if !SERVICES.contains(&container.binary.as_str()) {
            continue;
        }
        // Health check: a route the code serves, on the port the service binds.
        let test = strings(text_at(service, &["healthcheck", "test"])).join(" ");
        let url = test
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_string);
        match url {
            None => problems.push(format!("compose service {name}: no HTTP health check")),
            Some(url) => {
                let path = url
                    .split_once("://")
                    .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()));
                let path = path.unwrap_or_default();
                if path != "/ready" {
                    problems.push(format!(
                        "compose service {name}: the health check asks for {path}, not /ready"
                    ));
                }
                if !served_routes(&container.binary).contains(&path) {
                    problems.push(format!(
                        "compose service {name}: {path} is no route {} serves",
                        container.binary
                    ));
                }
                if Some(port_of(&url)) != container.serving_port() {
                    problems.push(format!(
                        "compose service {name}: the health check's port ({url}) is not where it serves ({:?})",
                        container.get(serving_var(&container.binary))
                    ));
                }
            }
        }
        let after = text_at(service, &["depends_on", provision_name, "condition"]).map(scalar);
        if after.as_deref() != Some("service_completed_successfully") {
            problems.push(format!(
                "compose service {name} should start after {provision_name} completed successfully"
            ));
        }
        if container.env.contains_key("DATABASE_URL") {
            let database = container.env["DATABASE_URL"].clone();
            let host = database
                .split('@')
                .nth(1)
                .and_then(|h| h.split(':').next())
                .unwrap_or_default()
                .to_string();
            let healthy = text_at(service, &["depends_on", &host, "condition"]).map(scalar);
            if healthy.as_deref() != Some("service_healthy") {
                problems.push(format!(
                    "compose service {name} should wait for {host} to be healthy"
                ));
            }
        }
    }
    let provision = &provisions[0].1;
    let nats = strings(text_at(provision, &["depends_on"]).map(|d| {
        // depends_on: {nats: {condition: ...}}
        d.get("nats")
            .and_then(|n| n.get("condition"))
            .unwrap_or(&Value::Null)
    }));
    if nats != ["service_healthy"] {
        problems.push(format!(
            "compose service {provision_name} should wait for nats to be healthy"
        ));
    }
    fail_on(problems);
}

#[test]
fn compose_infrastructure_matches_its_config_files() {
    let mut problems = Vec::new();
    let compose = compose();
    let services: BTreeMap<String, Value> = compose_services(&compose).into_iter().collect();
    // NATS: the config file is mounted, its include and store are mounts, the health check asks JetStream
    // on the monitoring port the config opens.
    let nats = &services["nats"];
    let conf = read("deploy/nats/compose.conf");
    let mounts: BTreeMap<String, String> = strings(nats.get("volumes"))
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (parts[1].to_string(), parts[0].to_string())
        })
        .collect();
    let config_path = strings(nats.get("command"))
        .windows(2)
        .find(|w| w[0] == "--config" || w[0] == "-c")
        .map(|w| w[1].clone())
        .expect("nats is started with --config");
    if mounts.get(&config_path).map(String::as_str) != Some("./nats/compose.conf") {
        problems.push(format!(
            "nats: {config_path} should be deploy/nats/compose.conf, mounts {mounts:?}"
        ));
    }
    let config_dir = config_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    for line in conf.lines().map(str::trim) {
        if let Some(include) = line.strip_prefix("include ") {
            let include = include.trim_matches(|c| c == '"' || c == ';' || c == ' ');
            let full = format!("{config_dir}/{}", include.trim_start_matches("./"));
            if !mounts
                .keys()
                .any(|target| full.starts_with(&format!("{target}/")))
            {
                problems.push(format!(
                    "nats: the config includes {full}, which no volume mounts"
                ));
            }
        }
        if let Some(dir) = line.strip_prefix("store_dir:")
            && !mounts.contains_key(dir.trim())
        {
            problems.push(format!(
                "nats: the JetStream store {} is not a volume",
                dir.trim()
            ));
        }
    }
    let http_port = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("http_port:"))
        .map(|p| p.trim().parse::<u16>().expect("a port"))
        .expect("compose.conf opens the monitoring port");
    let check = strings(text_at(nats, &["healthcheck", "test"])).join(" ");
    let url = check
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_default();
    if !url.ends_with("/healthz?js-enabled-only=true") || port_of(url) != http_port {
        problems.push(format!("nats: the health check ({check}) should ask /healthz?js-enabled-only=true on {http_port}"));
    }
    if !conf.contains("sync_interval: always") {
        problems.push("nats: compose.conf should fsync every write (sync_interval: always)".into());
    }
    // PostgreSQL answers pg_isready.
    let pg = strings(text_at(&services["postgres"], &["healthcheck", "test"]));
    if !pg.iter().any(|w| w == "pg_isready") {
        problems.push(format!(
            "postgres: the health check should be pg_isready, is {pg:?}"
        ));
    }
    // Prometheus scrapes every service where it serves, and the NATS exporter.
    let prometheus = yaml("deploy/prometheus.yml");
    let targets: BTreeSet<String> = seq(prometheus.get("scrape_configs"))
        .iter()
        .flat_map(|job| {
            seq(job.get("static_configs"))
                .iter()
                .flat_map(|s| strings(s.get("targets")))
        })
        .collect();
    for (name, _, container) in compose_containers() {
        if SERVICES.contains(&container.binary.as_str()) {
            let target = format!("{name}:{}", container.serving_port().expect("a port"));
            if !targets.contains(&target) {
                problems.push(format!("prometheus.yml does not scrape {target}"));
            }
        }
    }
    let exporter = strings(services["nats-exporter"].get("command"));
    let exporter_port = exporter
        .iter()
        .find_map(|a| a.strip_prefix("-port="))
        .expect("the exporter's -port");
    if !targets.contains(&format!("nats-exporter:{exporter_port}")) {
        problems.push("prometheus.yml does not scrape the NATS exporter".into());
    }
    if !exporter.iter().any(|a| a.starts_with("-jsz")) {
        problems.push("the NATS exporter should export JetStream (-jsz=all: consumer lag)".into());
    }
    // The collector receives OTLP/HTTP where the services are told to send it.
    let collector = yaml("deploy/otel-collector.yaml");
    let endpoint = str_at(
        &collector,
        &["receivers", "otlp", "protocols", "http", "endpoint"],
    );
    let example = env_example();
    let documented = read("deploy/compose.yaml");
    if !documented.contains(&format!("http://otel-collector:{}", port_of(&endpoint))) {
        problems.push(format!(
            "compose should name the collector's OTLP endpoint (port {})",
            port_of(&endpoint)
        ));
    }
    // Every ${VAR} compose reads from deploy/.env is in .env.example.
    let text = read("deploy/compose.yaml");
    for (at, _) in text.match_indices("${") {
        let name: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !example.contains_key(&name) {
            problems.push(format!(
                "compose.yaml reads ${{{name}}}, which deploy/.env.example does not list"
            ));
        }
    }
    // And .env.example lists nothing compose does not read.
    for name in example.keys() {
        if !text.contains(&format!("${{{name}")) {
            problems.push(format!(
                "deploy/.env.example lists {name}, which compose.yaml does not read"
            ));
        }
    }
    fail_on(problems);
}

fn env_example() -> BTreeMap<String, String> {
    read("deploy/.env.example")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!(".env.example: {l:?} is not NAME=value"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

// --- Kubernetes ------------------------------------------------------------------------------------------------

/// Every object the kustomization applies, by `Kind/name`.
fn k8s_objects() -> BTreeMap<String, Value> {
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let mut objects = BTreeMap::new();
    for resource in strings(kustomization.get("resources")) {
        for doc in yaml_docs(&format!("deploy/k8s/{resource}")) {
            let key = format!(
                "{}/{}",
                str_at(&doc, &["kind"]),
                str_at(&doc, &["metadata", "name"])
            );
            assert!(
                objects.insert(key.clone(), doc).is_none(),
                "{key} is defined twice"
            );
        }
    }
    objects
}

/// The Secrets docs/operations.md tells the operator to create, with the keys it names.
fn documented_secrets() -> BTreeMap<String, BTreeSet<String>> {
    let docs = read("docs/operations.md").replace("\\\n", " ");
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in docs.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words
            .windows(3)
            .position(|w| w == ["create", "secret", "generic"])
        else {
            continue;
        };
        let name = words[at + 3].to_string();
        let keys = secrets.entry(name).or_default();
        for word in &words[at + 4..] {
            for flag in ["--from-literal=", "--from-file="] {
                if let Some(rest) = word.strip_prefix(flag)
                    && let Some((key, _)) = rest.split_once('=')
                {
                    keys.insert(key.to_string());
                }
            }
        }
    }
    secrets
}

/// The data keys of a ConfigMap.
fn config_map_keys(
    objects: &BTreeMap<String, Value>,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    objects.get(&format!("ConfigMap/{name}")).map(|cm| {
        cm.get("data")
            .and_then(Value::as_mapping)
            .map(|m| m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect())
            .unwrap_or_default()
    })
}

struct PodRefs {
    config_maps: BTreeSet<String>,
    /// Secret name -> keys read, and whether the reference is optional.
    secrets: BTreeMap<String, (BTreeSet<String>, bool)>,
}

fn k8s_container(
    place: &str,
    pod: &Value,
    container: &Value,
    objects: &BTreeMap<String, Value>,
    refs: &mut PodRefs,
    problems: &mut Vec<String>,
) -> Container {
    let command: Vec<String> = strings(container.get("command"))
        .into_iter()
        .chain(strings(container.get("args")))
        .collect();
    let (binary, command) = binary_of(&command);
    let mut env = BTreeMap::new();
    for from in seq(container.get("envFrom")) {
        if let Some(name) = text_at(from, &["configMapRef", "name"]).map(scalar) {
            refs.config_maps.insert(name.clone());
            match config_map_keys(objects, &name) {
                Some(keys) => env.extend(keys),
                None => problems.push(format!(
                    "{place}: envFrom ConfigMap {name} is not in the kustomization"
                )),
            }
        }
        if let Some(name) = text_at(from, &["secretRef", "name"]).map(scalar) {
            problems.push(format!(
                "{place}: envFrom Secret {name}: name each variable taken from a Secret instead"
            ));
        }
    }
    for var in seq(container.get("env")) {
        let name = str_at(var, &["name"]);
        let value = match (
            var.get("value"),
            text_at(var, &["valueFrom", "secretKeyRef"]),
        ) {
            (Some(value), _) => scalar(value),
            (None, Some(secret)) => {
                let optional = secret.get("optional").map(scalar).as_deref() == Some("true");
                let entry = refs
                    .secrets
                    .entry(str_at(secret, &["name"]))
                    .or_insert((BTreeSet::new(), optional));
                entry.0.insert(str_at(secret, &["key"]));
                entry.1 &= optional;
                format!("<secret {}>", str_at(secret, &["name"]))
            }
            _ => panic!("{place}: {name} has neither value nor secretKeyRef"),
        };
        env.insert(name, value);
    }
    let volumes: BTreeMap<String, &Value> = seq(text_at(pod, &["volumes"]))
        .iter()
        .map(|v| (str_at(v, &["name"]), v))
        .collect();
    let mut mounts = BTreeMap::new();
    for mount in seq(container.get("volumeMounts")) {
        let name = str_at(mount, &["name"]);
        let target = str_at(mount, &["mountPath"]);
        if mount.get("subPath").is_some() {
            problems.push(format!(
                "{place}: {target} is a subPath mount, which never sees an update"
            ));
        }
        let Some(volume) = volumes.get(&name) else {
            problems.push(format!("{place}: volumeMount {name} has no volume"));
            continue;
        };
        let items: BTreeMap<String, String> = seq(volume
            .get("secret")
            .or(volume.get("configMap"))
            .and_then(|s| s.get("items")))
        .iter()
        .map(|i| (str_at(i, &["path"]), str_at(i, &["key"])))
        .collect();
        let mounted = if let Some(secret) = volume.get("secret") {
            let secret_name = str_at(secret, &["secretName"]);
            let entry = refs
                .secrets
                .entry(secret_name.clone())
                .or_insert((BTreeSet::new(), false));
            entry.0.extend(items.values().cloned());
            if items.is_empty() {
                problems.push(format!(
                    "{place}: secret volume {secret_name} should name the items it needs"
                ));
            }
            // A file is what its key says: another role's credentials never hide under this one's name.
            for (path, key) in &items {
                if path != key {
                    problems.push(format!(
                        "{place}: secret {secret_name}'s key {key} is mounted as {path}"
                    ));
                }
            }
            Mount::Creds(items.keys().cloned().collect())
        } else if let Some(cm) = volume.get("configMap") {
            let cm_name = str_at(cm, &["name"]);
            refs.config_maps.insert(cm_name.clone());
            match config_map_keys(objects, &cm_name) {
                None => problems.push(format!(
                    "{place}: ConfigMap {cm_name} is not in the kustomization"
                )),
                Some(keys) => {
                    for key in items.values() {
                        if !keys.contains_key(key) {
                            problems.push(format!("{place}: ConfigMap {cm_name} has no key {key}"));
                        }
                    }
                    if !items.is_empty() {
                        for key in keys.keys() {
                            if !items.values().any(|k| k == key) {
                                problems.push(format!(
                                    "{place}: key {key} of ConfigMap {cm_name} is mounted nowhere (add it to the volume's items)"
                                ));
                            }
                        }
                    }
                }
            }
            let files = if items.is_empty() {
                config_map_keys(objects, &cm_name)
                    .unwrap_or_default()
                    .into_keys()
                    .map(|k| (k.clone(), k))
                    .collect()
            } else {
                items
            };
            Mount::ConfigMap { files }
        } else {
            Mount::Other
        };
        mounts.insert(target, mounted);
    }
    Container {
        place: place.to_string(),
        binary,
        command,
        env,
        mounts,
    }
}

/// A container's named port, or a number.
fn probe_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().map(|n| n as u16),
        named => {
            let name = scalar(named);
            seq(container.get("ports"))
                .iter()
                .find(|p| p.get("name").map(scalar).as_deref() == Some(name.as_str()))
                .and_then(|p| p.get("containerPort"))
                .and_then(Value::as_u64)
                .map(|n| n as u16)
        }
    }
}

#[test]
fn kubernetes_runs_every_service_probed_on_served_routes_with_what_it_reads() {
    let mut problems = Vec::new();
    let objects = k8s_objects();
    // Every manifest in deploy/k8s is applied.
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<String> = strings(kustomization.get("resources"))
        .into_iter()
        .collect();
    for entry in std::fs::read_dir(root().join("deploy/k8s")).expect("deploy/k8s") {
        let file = entry
            .expect("an entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if file.ends_with(".yaml") && file != "kustomization.yaml" && !listed.contains(&file) {
            problems.push(format!(
                "deploy/k8s/{file} is not in kustomization.yaml's resources"
            ));
        }
    }
    let image_name = str_at(&seq(kustomization.get("images"))[0], &["name"]);
    let uid = image_uid();
    let secrets_in_docs = documented_secrets();
    let mut refs = PodRefs {
        config_maps: BTreeSet::new(),
        secrets: BTreeMap::new(),
    };
    let mut deployed = BTreeSet::new();
    let mut provisioned = false;
    for (key, object) in &objects {
        let (kind, name) = key.split_once('/').expect("Kind/name");
        if kind != "Deployment" && kind != "Job" {
            continue;
        }
        let place = format!("k8s {key}");
        let pod = text_at(object, &["spec", "template", "spec"]).expect("a pod template");
        let pod_security = pod.get("securityContext");
        if pod_security
            .and_then(|s| s.get("runAsNonRoot"))
            .map(scalar)
            .as_deref()
            != Some("true")
        {
            problems.push(format!("{place}: the pod should set runAsNonRoot: true"));
        }
        let run_as = pod_security.and_then(|s| s.get("runAsUser")).map(scalar);
        if run_as != Some(uid.to_string()) {
            problems.push(format!(
                "{place}: runAsUser {run_as:?} is not the image's uid {uid}"
            ));
        }
        for container in seq(pod.get("containers")) {
            if str_at(container, &["image"]) != image_name {
                problems.push(format!(
                    "{place}: image {} is not the kustomization's {image_name}",
                    str_at(container, &["image"])
                ));
            }
            let c = k8s_container(&place, pod, container, &objects, &mut refs, &mut problems);
            c.check_env(&mut problems);
            c.check_creds(&mut problems);
            c.check_files(&mut problems);
            let security = container.get("securityContext");
            for (field, want) in [
                ("readOnlyRootFilesystem", "true"),
                ("allowPrivilegeEscalation", "false"),
            ] {
                if security.and_then(|s| s.get(field)).map(scalar).as_deref() != Some(want) {
                    problems.push(format!("{place}: the container should set {field}: {want}"));
                }
            }
            for limit in [
                ["resources", "requests", "memory"],
                ["resources", "limits", "memory"],
                ["resources", "requests", "cpu"],
            ] {
                if text_at(container, &limit).is_none() {
                    problems.push(format!("{place}: no {}", limit.join(".")));
                }
            }
            if kind == "Job" {
                if c.binary == "backorder-provision"
                    && c.command.get(1).map(String::as_str) == Some("streams")
                {
                    provisioned = true;
                    let replicas = c.get("BO_STREAM_REPLICAS").unwrap_or_default().to_string();
                    let values = yaml("deploy/nats/helm-values.yaml");
                    let servers = str_at(&values, &["config", "cluster", "replicas"]);
                    if replicas != servers {
                        problems.push(format!("{place}: BO_STREAM_REPLICAS={replicas}, but the NATS cluster has {servers} servers"));
                    }
                }
                continue;
            }
            if !SERVICES.contains(&c.binary.as_str()) {
                problems.push(format!(
                    "{place}: runs {}, which is not a service",
                    c.binary
                ));
                continue;
            }
            if c.binary != name {
                problems.push(format!("{place}: runs {}", c.binary));
            }
            deployed.insert(c.binary.clone());
            let served = served_routes(&c.binary);
            let serving = c.serving_port();
            for (probe, path) in [
                ("livenessProbe", "/livez"),
                ("readinessProbe", "/readyz"),
                ("startupProbe", ""),
            ] {
                let Some(http) = text_at(container, &[probe, "httpGet"]) else {
                    if !path.is_empty() {
                        problems.push(format!("{place}: no {probe} over HTTP"));
                    }
                    continue;
                };
                let asked = str_at(http, &["path"]);
                if !path.is_empty() && asked != path {
                    problems.push(format!("{place}: {probe} asks {asked}, not {path}"));
                }
                if !served.contains(&asked) {
                    problems.push(format!(
                        "{place}: {probe} asks {asked}, which {} does not serve ({served:?})",
                        c.binary
                    ));
                }
                let port = http.get("port").and_then(|p| probe_port(container, p));
                if port.is_none() || port != serving {
                    problems.push(format!(
                        "{place}: {probe} port {port:?} is not where it serves ({serving:?})"
                    ));
                }
            }
            // A Service selects the pods and reaches the port they serve on.
            let labels =
                text_at(object, &["spec", "template", "metadata", "labels"]).expect("pod labels");
            let service = objects.get(&format!("Service/{name}"));
            match service {
                None => problems.push(format!("{place}: no Service {name} for its metrics")),
                Some(service) => {
                    let selector = text_at(service, &["spec", "selector"])
                        .and_then(Value::as_mapping)
                        .cloned()
                        .unwrap_or_default();
                    if selector.is_empty() || selector.iter().any(|(k, v)| labels.get(k) != Some(v))
                    {
                        problems.push(format!(
                            "Service/{name} does not select the pods of {place}"
                        ));
                    }
                    let target = seq(text_at(service, &["spec", "ports"]))
                        .first()
                        .and_then(|p| p.get("targetPort"))
                        .and_then(|p| probe_port(container, p));
                    if target != serving {
                        problems.push(format!(
                            "Service/{name} targets port {target:?}, the pods serve on {serving:?}"
                        ));
                    }
                }
            }
        }
    }
    for binary in SERVICES {
        if !deployed.contains(binary) {
            problems.push(format!("no Deployment runs {binary}"));
        }
    }
    if !provisioned {
        problems.push("no Job runs backorder-provision streams".into());
    }
    // Every ConfigMap is used, and every Secret referenced is one the operations guide creates with its keys.
    for key in objects.keys() {
        if let Some(name) = key.strip_prefix("ConfigMap/")
            && !refs.config_maps.contains(name)
        {
            problems.push(format!("ConfigMap {name} is used by no pod"));
        }
    }
    let values = yaml("deploy/nats/helm-values.yaml");
    let mut secrets = refs.secrets;
    for patch in seq(text_at(&values, &["podTemplate", "patch"])) {
        if let Some(name) = text_at(patch, &["value", "secret", "secretName"]).map(scalar) {
            secrets
                .entry(name)
                .or_insert((BTreeSet::new(), false))
                .0
                .insert("accounts.conf".into());
        }
    }
    if let Some(nkey) = text_at(&values, &["natsBox", "contexts", "default", "nkey"]) {
        secrets
            .entry(str_at(nkey, &["secretName"]))
            .or_insert((BTreeSet::new(), false))
            .0
            .insert(str_at(nkey, &["key"]));
    }
    for (name, (keys, optional)) in &secrets {
        match secrets_in_docs.get(name) {
            None if *optional => {}
            None => problems.push(format!(
                "Secret {name} (keys {keys:?}) is referenced but docs/operations.md does not create it (kubectl create secret generic {name} ...)"
            )),
            Some(documented) => {
                for key in keys {
                    let is_creds = key.ends_with(".creds");
                    if !documented.contains(key) && !is_creds {
                        problems.push(format!("Secret {name}: key {key} is read but docs/operations.md does not create it"));
                    }
                }
            }
        }
    }
    // The template overrides load over the shipped templates; the policies parse.
    if let Some(templates) = config_map_keys(&objects, "backorder-notifier-templates") {
        let dir = std::env::temp_dir().join(format!("bo-deploy-templates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (key, text) in &templates {
            let (locale, file) = key.split_once('.').expect("<locale>.<file>");
            std::fs::create_dir_all(dir.join(locale)).expect("a temporary folder");
            std::fs::write(dir.join(locale).join(file), text).expect("writing a template");
        }
        if let Err(e) = notifier::templates::Templates::load(Some(&dir)) {
            problems.push(format!(
                "ConfigMap backorder-notifier-templates: the notifier refuses it: {e}"
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    for (key, text) in config_map_keys(&objects, "backorder-reorder-policies").unwrap_or_default() {
        check_policy_file(
            &format!("ConfigMap backorder-reorder-policies key {key}"),
            &text,
            &mut problems,
        );
    }
    fail_on(problems);
}

#[test]
fn the_nats_chart_values_make_a_replicated_cluster_with_the_accounts_mounted() {
    let mut problems = Vec::new();
    let values = yaml("deploy/nats/helm-values.yaml");
    let expect = |problems: &mut Vec<String>, path: &[&str], want: &str| {
        let got = text_at(&values, path).map(scalar);
        if got.as_deref() != Some(want) {
            problems.push(format!(
                "helm-values.yaml: {} is {got:?}, should be {want}",
                path.join(".")
            ));
        }
    };
    expect(&mut problems, &["config", "cluster", "enabled"], "true");
    expect(&mut problems, &["config", "jetstream", "enabled"], "true");
    expect(
        &mut problems,
        &["config", "jetstream", "fileStore", "enabled"],
        "true",
    );
    expect(
        &mut problems,
        &["config", "jetstream", "fileStore", "pvc", "enabled"],
        "true",
    );
    expect(
        &mut problems,
        &["config", "jetstream", "merge", "sync_interval"],
        "always",
    );
    expect(&mut problems, &["config", "monitor", "enabled"], "true");
    let replicas: u32 = str_at(&values, &["config", "cluster", "replicas"])
        .parse()
        .expect("a number");
    if replicas < 3 || replicas.is_multiple_of(2) {
        problems.push(format!(
            "helm-values.yaml: {replicas} servers: an odd number of at least 3 keeps a quorum"
        ));
    }
    // The include names a file of the mounted Secret, relative to the chart's /etc/nats-config/nats.conf.
    let merge = text_at(&values, &["config", "merge"])
        .and_then(Value::as_mapping)
        .expect("config.merge");
    let include = merge
        .iter()
        .find(|(k, _)| scalar(k).ends_with("$include"))
        .map(|(_, v)| scalar(v))
        .expect("config.merge includes the accounts");
    let included = Path::new("/etc/nats-config").join(&include);
    let included = normalize(&included);
    let mount = seq(text_at(&values, &["container", "patch"]))
        .iter()
        .find(|p| str_at(p, &["path"]) == "/volumeMounts/-")
        .map(|p| {
            (
                str_at(p, &["value", "name"]),
                str_at(p, &["value", "mountPath"]),
            )
        });
    let volume = seq(text_at(&values, &["podTemplate", "patch"]))
        .iter()
        .find(|p| str_at(p, &["path"]) == "/spec/volumes/-")
        .map(|p| str_at(p, &["value", "name"]));
    match mount {
        None => problems.push("helm-values.yaml: no volumeMount for the accounts Secret".into()),
        Some((name, path)) => {
            if included != Path::new(&path).join("accounts.conf") {
                problems.push(format!(
                    "helm-values.yaml: the include {} is not accounts.conf in the mount {path}",
                    included.display()
                ));
            }
            if volume.as_deref() != Some(name.as_str()) {
                problems.push(format!(
                    "helm-values.yaml: the mount {name} has no volume ({volume:?})"
                ));
            }
        }
    }
    // The services reach the chart's Service: the release is named after the host in NATS_URL.
    let objects = k8s_objects();
    let common = config_map_keys(&objects, "backorder-common").expect("ConfigMap backorder-common");
    let host = common["NATS_URL"]
        .split("://")
        .nth(1)
        .and_then(|h| h.split(':').next())
        .unwrap_or_default()
        .to_string();
    let docs = read("docs/operations.md");
    if !docs.contains(&format!("helm upgrade --install {host} nats/nats"))
        && !docs.contains(&format!("helm install {host} nats/nats"))
    {
        problems.push(format!("docs/operations.md should install the NATS chart as release {host} (the host of NATS_URL)"));
    }
    fail_on(problems);
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

// --- every file, and the guide ----------------------------------------------------------------------------------

#[test]
fn every_file_in_deploy_is_parsed_and_checked() {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(
                    path.strip_prefix(root())
                        .expect("in the repository")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut unknown = Vec::new();
    for file in &files {
        let name = file.rsplit('/').next().unwrap_or_default();
        match name.rsplit_once('.').map(|(_, e)| e) {
            _ if name == "Dockerfile" => assert!(!dockerfile().is_empty()),
            Some("yaml" | "yml") => {
                assert!(!yaml_docs(file).is_empty(), "{file} is empty");
            }
            Some("toml") => {
                let text = read(file);
                text.parse::<toml::Table>()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                if name.contains("reorder-policies") {
                    let mut problems = Vec::new();
                    check_policy_file(file, &text, &mut problems);
                    fail_on(problems);
                }
            }
            Some("conf") => check_nats_conf(file),
            Some("example") if name == ".env.example" => {
                env_example();
            }
            Some("md") => {}
            _ if name == ".env" => {} // the operator's own, ignored by git
            _ => unknown.push(file.clone()),
        }
    }
    assert!(
        unknown.is_empty(),
        "no check knows these files of deploy/; add one to this test: {unknown:?}"
    );
    // Every path the guide and the kit mention under deploy/ exists.
    let mut problems = Vec::new();
    for source in [
        "docs/operations.md",
        "deploy/compose.yaml",
        "deploy/Dockerfile",
        "README.md",
    ] {
        let text = read(source);
        for (at, _) in text.match_indices("deploy/") {
            if at > 0 && text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
            {
                continue;
            }
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            let path = path.trim_end_matches(['.', '/']);
            // A file (`deploy/compose.yaml`) or a path in a folder; `deploy/allocation` is a kubectl resource.
            let names_a_file = path
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains('.'))
                || path.matches('/').count() >= 2;
            if path.contains('<') || !names_a_file {
                continue;
            }
            if !root().join(path).exists() && path != "deploy/.env" {
                problems.push(format!("{source} names {path}, which does not exist"));
            }
        }
    }
    fail_on(problems);
}

/// A NATS server config: balanced braces, and an included file that is either in the repository or named as
/// mounted by a deployment.
fn check_nats_conf(file: &str) {
    let text = read(file);
    let mut depth = 0i32;
    for (n, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or_default();
        depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
        assert!(depth >= 0, "{file}:{}: a closing brace too many", n + 1);
    }
    assert_eq!(depth, 0, "{file}: unbalanced braces");
}

#[test]
fn the_guide_names_only_metrics_the_code_exports() {
    let mut exported = BTreeSet::new();
    let mut dirs = vec![root().join("services"), root().join("runtime/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                    for (at, m) in text.match_indices(macro_name) {
                        let rest = text[at + m.len()..].trim_start();
                        if let Some(name) = rest.strip_prefix('"') {
                            exported.insert(name[..name.find('"').expect("closed")].to_string());
                        }
                    }
                }
            }
        }
    }
    assert!(exported.contains("bo_messages_total"), "{exported:?}");
    let docs = read("docs/operations.md");
    let mut unknown = BTreeSet::new();
    for (at, _) in docs.match_indices("bo_") {
        if at > 0 && docs[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = docs[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .fold(name.clone(), |n, s| {
                n.strip_suffix(s).map(str::to_string).unwrap_or(n)
            });
        if !exported.contains(&name) && !exported.contains(&base) {
            unknown.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/operations.md names metrics no code exports: {unknown:?} (exported: {exported:?})"
    );
    for section in ["## Deploying", "## Running at scale"] {
        assert!(
            docs.contains(section),
            "docs/operations.md has no {section:?} section"
        );
    }
}
