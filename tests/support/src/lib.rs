//! Drives the real system from outside, as an OMS, a WMS and the gateways would: the end-to-end tests
//! (`tests/e2e`) and the services' own integration tests start the service binaries as processes under a
//! prefix and database of their own; the demo and the benchmarks (`tests/demo`) use the same pieces.

pub mod infra;
pub mod messages;
pub mod pki;
pub mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use backorder_runtime::Subjects;
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tokio::process::{Child, Command};

pub const SERVICES: [&str; 4] = [
    "order-intake",
    "allocation",
    "replenishment-trigger",
    "notifier",
];

/// The web dashboard's binary, started on demand ([`System::start_console`]).
pub const CONSOLE: &str = "console";

/// How long a test waits for something before it fails: beyond the 30 s ack wait after which a message held
/// by a killed service is redelivered.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Test resources are named `e2e-<unix seconds>-<random>`; ones older than this belong to a crashed run and
/// are removed by the next run.
const STALE_AFTER_SECS: u64 = 3600;

/// One message as this client saw it.
struct Received {
    subject: String,
    /// `Nats-Msg-Id`
    id: Option<String>,
    traceparent: Option<String>,
    payload: Bytes,
}

/// Every message published under a prefix, in the order this client saw them, by subject.
#[derive(Clone, Default)]
pub struct Seen {
    log: Arc<Mutex<Vec<Received>>>,
}

impl Seen {
    /// Records everything under `<prefix>.>` from now on (a core subscription: JetStream-stored messages are
    /// delivered to it too).
    pub async fn subscribe(bus: &Bus) -> anyhow::Result<Self> {
        let seen = Seen::default();
        let mut subscription = bus
            .client
            .subscribe(format!("{}.>", bus.subjects.prefix()))
            .await?;
        // The server has the subscription once a round trip has passed.
        bus.client.flush().await?;
        let log = seen.log.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let header = |name: &str| {
                    message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_string())
                };
                let received = Received {
                    subject: message.subject.to_string(),
                    id: header(async_nats::header::NATS_MESSAGE_ID.as_ref()),
                    traceparent: header("traceparent"),
                    payload: message.payload,
                };
                log.lock().unwrap().push(received);
            }
        });
        Ok(seen)
    }

    /// Every message seen on `subject`, decoded.
    pub fn all<M: Message + Default>(&self, subject: &str) -> Vec<M> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.subject == subject)
            .filter_map(|r| M::decode(r.payload.as_ref()).ok())
            .collect()
    }

    /// The `traceparent` header of every message seen on `subject`, in order.
    pub fn traceparents(&self, subject: &str) -> Vec<Option<String>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.subject == subject)
            .map(|r| r.traceparent.clone())
            .collect()
    }

    pub fn count(&self, subject: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.subject == subject)
            .count()
    }

    /// Messages on `subject` a consumer that dedupes by `Nats-Msg-Id` would see, decoded. (A core subscriber
    /// also sees the copies a stream drops as duplicates.)
    pub fn distinct<M: Message + Default>(&self, subject: &str) -> Vec<M> {
        let mut ids = std::collections::HashSet::new();
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                r.subject == subject && r.id.as_ref().is_none_or(|id| ids.insert(id.clone()))
            })
            .filter_map(|r| M::decode(r.payload.as_ref()).ok())
            .collect()
    }

    /// Waits for the first message on `subject` that satisfies `matches`.
    pub async fn wait_for<M: Message + Default>(
        &self,
        subject: &str,
        matches: impl Fn(&M) -> bool,
    ) -> anyhow::Result<M> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(found) = self.all::<M>(subject).into_iter().find(|m| matches(m)) {
                return Ok(found);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nothing matching on {subject} within {PATIENCE:?}; seen there: {}",
                    self.count(subject)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until `query` (a single bigint) returns `expected`, retrying while the schema does not exist yet.
pub async fn wait_for_value(
    pool: &PgPool,
    query: &'static str,
    bind: &str,
    expected: i64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let value: Option<i64> = sqlx::query_scalar(query)
            .bind(bind)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
        if value == Some(expected) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{query} with {bind:?} is {value:?}, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until allocation has booked `on_hand` units of `sku`.
pub async fn wait_for_stock(pool: &PgPool, sku: &str, on_hand: i64) -> anyhow::Result<()> {
    wait_for_value(
        pool,
        "select on_hand from stock where sku = $1",
        sku,
        on_hand,
    )
    .await
}

/// Loads `quantity` units of `sku` as the WMS's initial stock (a `StockAdjusted` with id `init-<sku>`) and
/// waits until allocation has booked them, so orders published next find the stock.
pub async fn load_stock(bus: &Bus, db: &PgPool, sku: &str, quantity: i64) -> anyhow::Result<()> {
    let id = format!("init-{sku}");
    let adjustment = messages::adjustment(&id, sku, quantity, "initial load");
    bus.publish(bus.subjects.stock_adjusted(), &id, &adjustment)
        .await?;
    wait_for_stock(db, sku, quantity).await
}

/// Deletes the streams of a prefix (and with them their consumers) and the key-value buckets the services
/// keep under it (a bucket's stream is `KV_<bucket>`); missing ones are fine. Without the buckets, a reset
/// prefix would remember what was requested before.
pub async fn delete_streams(bus: &Bus) -> anyhow::Result<()> {
    let streams = StreamKind::ALL.map(|kind| bus.subjects.stream(kind));
    let buckets = bus
        .subjects
        .buckets()
        .into_iter()
        .map(|b| format!("KV_{b}"));
    for name in streams.into_iter().chain(buckets) {
        if let Err(error) = bus.js.delete_stream(&name).await
            && bus.js.get_stream(&name).await.is_ok()
        {
            return Err(error).with_context(|| format!("deleting stream {name}"));
        }
    }
    Ok(())
}

/// Connects as a client of the system (creating the prefix's streams, so publishing works before any service
/// is up).
pub async fn connect(nats_url: &str, prefix: &str) -> anyhow::Result<Bus> {
    Bus::connect(
        &stream::nats().with_url(nats_url),
        Subjects::new(prefix).map_err(anyhow::Error::msg)?,
        "backorder-client",
    )
    .await
}

/// The replicas a system's streams are provisioned with: `BO_STREAM_REPLICAS` of the services' environment,
/// else 1.
fn stream_replicas(env: &HashMap<&str, &str>) -> anyhow::Result<usize> {
    env.get("BO_STREAM_REPLICAS").map_or(Ok(1), |v| {
        v.parse()
            .with_context(|| format!("BO_STREAM_REPLICAS={v} is not a number"))
    })
}

/// Creates `database` on the server of `admin` and opens a small pool on it (the test's own checks are few).
async fn create_database(admin: &PgConnectOptions, database: &str) -> anyhow::Result<PgPool> {
    let mut conn = admin.connect().await.context("connecting to Postgres")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create database \"{database}\""
    )))
    .execute(&mut conn)
    .await?;
    let db_options = admin.clone().database(database);
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .connect_with(db_options)
        .await?)
}

/// Connects the test to `prefix` as the admin (`admin.creds` in `creds_dir`, if given), provisioning its
/// streams with the replicas `extra_env` asks for: the services may not create them.
async fn connect_admin(
    nats_url: &str,
    creds_dir: Option<&std::path::Path>,
    prefix: &str,
    extra_env: &HashMap<&str, &str>,
) -> anyhow::Result<Bus> {
    let mut options = stream::nats().with_url(nats_url);
    if let Some(dir) = creds_dir {
        options.creds = Some(dir.join("admin.creds"));
    }
    Bus::connect_replicated(
        &options,
        Subjects::new(prefix).map_err(anyhow::Error::msg)?,
        "backorder-client",
        stream_replicas(extra_env)?,
    )
    .await
}

/// The environment every service process of a system gets: this system's prefix and database, settings that
/// keep tests fast and side by side, then `extra_env` (which overrides them).
fn service_env(
    nats_url: &str,
    database_url: String,
    prefix: String,
    extra_env: &HashMap<&str, &str>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("NATS_URL".into(), nats_url.to_string()),
        // The test provisioned the prefix (as the admin user); each service connects as its own role
        // ([`System::launch_with`]), which may not create streams.
        ("BO_PROVISION".into(), "false".into()),
        ("DATABASE_URL".into(), database_url),
        ("BO_PREFIX".into(), prefix),
        // Health and metrics on a port the system picks, so systems side by side do not collide.
        ("BO_HTTP_ADDR".into(), "127.0.0.1:0".into()),
        // Each customer event is told as soon as it arrives, at any hour (tests that want coalescing or
        // quiet hours set them in `extra_env`).
        ("BO_NOTIFY_COALESCE_SECS".into(), "0".into()),
        ("BO_SMS_QUIET_HOURS".into(), "off".into()),
        (
            "RUST_LOG".into(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
        // A purchase request goes out as soon as a shortage is known: tests do not wait for a window.
        ("BO_REORDER_WINDOW_SECS".into(), "0".into()),
    ];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// The four services as processes, under a prefix and database of their own.
pub struct System {
    pub bus: Bus,
    pub seen: Seen,
    /// The allocation service's database, for waiting on and checking invariants.
    pub db: PgPool,
    database: String,
    admin: PgConnectOptions,
    children: Vec<(&'static str, Child)>,
    logs: PathBuf,
    bin_dir: PathBuf,
    /// The environment every service process gets.
    env: Vec<(String, String)>,
    /// Where each service's `<role>.creds` is; `None`: beside the tests' `NATS_CREDS` ([`stream::role_creds`]).
    creds_dir: Option<PathBuf>,
}

impl System {
    /// Starts the four services with `NATS_URL` and a new database on the server of `DATABASE_URL` (as
    /// `make test` sets them; defaults for this team's machines otherwise).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&HashMap::new()).await
    }

    /// Like [`start`](Self::start), with extra environment for the services.
    pub async fn start_with(extra_env: &HashMap<&str, &str>) -> anyhow::Result<Self> {
        let database_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
        Self::start_on(&stream::nats_url(), &database_url, extra_env).await
    }

    /// Like [`start_with`](Self::start_with), on the given NATS server and PostgreSQL server (a database of
    /// its own is created there), e.g. the fault tests' own ([`infra`]).
    ///
    /// `BO_STREAM_REPLICAS` in `extra_env` is the replicas the test provisions the streams and buckets with.
    pub async fn start_on(
        nats_url: &str,
        database_url: &str,
        extra_env: &HashMap<&str, &str>,
    ) -> anyhow::Result<Self> {
        Self::start_as(nats_url, None, database_url, extra_env).await
    }

    /// Like [`start_on`](Self::start_on), on a server whose users are the `<role>.creds` files in `creds_dir`
    /// (e.g. an [`infra::Cluster`]'s): the test connects as `admin.creds`, each service as its role.
    pub async fn start_on_with_users(
        nats_url: &str,
        creds_dir: &std::path::Path,
        database_url: &str,
        extra_env: &HashMap<&str, &str>,
    ) -> anyhow::Result<Self> {
        Self::start_as(
            nats_url,
            Some(creds_dir.to_path_buf()),
            database_url,
            extra_env,
        )
        .await
    }

    async fn start_as(
        nats_url: &str,
        creds_dir: Option<PathBuf>,
        database_url: &str,
        extra_env: &HashMap<&str, &str>,
    ) -> anyhow::Result<Self> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let prefix = format!(
            "e2e-{now}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let database = prefix.replace('-', "_");

        let admin = database_url
            .parse::<PgConnectOptions>()?
            .database("postgres");
        remove_stale_databases(&admin, now).await?;
        let db = create_database(&admin, &database).await?;
        let service_database_url = admin.clone().database(&database).to_url_lossy().to_string();

        let bus = connect_admin(nats_url, creds_dir.as_deref(), &prefix, extra_env).await?;
        remove_stale_streams(&bus, now).await?;
        let seen = Seen::subscribe(&bus).await?;

        let bin_dir = binaries_dir()?;
        let logs = bin_dir.join("e2e-logs").join(&prefix);
        std::fs::create_dir_all(&logs)?;
        let env = service_env(nats_url, service_database_url, prefix, extra_env);
        let mut system = Self {
            bus,
            seen,
            db,
            database,
            admin,
            children: Vec::new(),
            logs,
            bin_dir,
            env,
            creds_dir,
        };
        for service in SERVICES {
            system.spawn(service)?;
        }
        Ok(system)
    }

    /// Starts `service` as a process, its output appended to its log.
    fn spawn(&mut self, service: &'static str) -> anyhow::Result<()> {
        let child = self.launch(service, &format!("{service}.log"))?;
        self.children.retain(|(s, _)| *s != service);
        self.children.push((service, child));
        Ok(())
    }

    fn launch(&self, service: &str, log: &str) -> anyhow::Result<Child> {
        self.launch_with(service, log, &[])
    }

    /// Like [`launch`](Self::launch), with more environment for this process only.
    fn launch_with(
        &self,
        service: &str,
        log: &str,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(log))?;
        let creds = match &self.creds_dir {
            Some(dir) => Some(dir.join(format!("{service}.creds"))),
            None => stream::role_creds(service),
        }
        .map(|path| ("NATS_CREDS", path));
        Command::new(self.bin_dir.join(service))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(creds)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {service} from {}", self.bin_dir.display()))
    }

    /// Starts one more process of `service` beside the running one (same prefix, database and consumers).
    pub fn add_instance(&mut self, service: &'static str) -> anyhow::Result<()> {
        let child = self.launch(service, &format!("{service}-{}.log", self.children.len()))?;
        self.children.push((service, child));
        Ok(())
    }

    /// Starts the web dashboard (`console`) beside the services, on a port it picks (`BO_CONSOLE_ADDR=
    /// 127.0.0.1:0`), with `token` as `BO_CONSOLE_TOKEN` (none: it only reads). [`console_url`]
    /// (Self::console_url) says where it serves.
    pub fn start_console(&mut self, token: Option<&str>) -> anyhow::Result<()> {
        if !self.bin_dir.join(CONSOLE).exists() {
            bail!(
                "{} is missing: build it first (`cargo build -p console`)",
                self.bin_dir.join(CONSOLE).display()
            );
        }
        let mut env = vec![("BO_CONSOLE_ADDR", "127.0.0.1:0")];
        if let Some(token) = token {
            env.push(("BO_CONSOLE_TOKEN", token));
        }
        let child = self.launch_with(CONSOLE, &format!("{CONSOLE}.log"), &env)?;
        self.children.retain(|(s, _)| *s != CONSOLE);
        self.children.push((CONSOLE, child));
        Ok(())
    }

    /// The console's address, `http://127.0.0.1:PORT`, from the line it logs when it starts.
    pub async fn console_url(&self) -> anyhow::Result<String> {
        let port = self.logged_port(CONSOLE, "console serving on").await?;
        Ok(format!("http://127.0.0.1:{port}"))
    }

    /// Where `service` serves `/health`, `/ready` and `/metrics`: the port it was given, read from its log.
    pub async fn http_addr(&self, service: &str) -> anyhow::Result<std::net::SocketAddr> {
        let port = self
            .logged_port(service, "health and metrics served")
            .await?;
        Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The port after `127.0.0.1:` in the last line of `service`'s log that contains `marker`, waited for.
    async fn logged_port(&self, service: &str, marker: &str) -> anyhow::Result<u16> {
        let path = self.logs.join(format!("{service}.log"));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let served = log
                .lines()
                .filter(|line| line.contains(marker))
                .filter_map(|line| line.split("127.0.0.1:").nth(1))
                .filter_map(|rest| {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    port.parse::<u16>().ok()
                })
                .next_back();
            if let Some(port) = served {
                return Ok(port);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{service} never logged \"{marker} 127.0.0.1:PORT\"; see {}",
                    path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the services' logs are (`target/<profile>/e2e-logs/<prefix>/`; removed by a clean [`stop`]
    /// (Self::stop)).
    pub fn logs(&self) -> &std::path::Path {
        &self.logs
    }

    /// The books' invariants, checked in allocation's database; empty when they hold.
    pub async fn invariant_violations(&self) -> anyhow::Result<Vec<String>> {
        Ok(allocation::invariants::violations(&self.db).await?)
    }

    /// Starts a service again after [`kill`](Self::kill).
    pub fn restart(&mut self, service: &'static str) -> anyhow::Result<()> {
        self.spawn(service)
    }

    /// The process id of every service process still known to be running (a killed or exited one has
    /// none), for reading their `/proc/<pid>/status`.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.children
            .iter()
            .filter_map(|(service, child)| Some((*service, child.id()?)))
            .collect()
    }

    pub fn subjects(&self) -> &Subjects {
        &self.bus.subjects
    }

    pub async fn publish(
        &self,
        subject: String,
        id: &str,
        message: &impl Message,
    ) -> anyhow::Result<()> {
        self.bus.publish(subject, id, message).await
    }

    /// Fails when a service has exited (it should run until stopped).
    pub fn assert_running(&mut self) -> anyhow::Result<()> {
        for (service, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{service} exited with {status}; see {}",
                    self.logs.display()
                );
            }
        }
        Ok(())
    }

    /// Starts again every service whose process has ended, as an orchestrator would; returns them.
    pub fn restart_exited(&mut self) -> anyhow::Result<Vec<&'static str>> {
        let mut exited = Vec::new();
        for (service, child) in &mut self.children {
            if child.try_wait()?.is_some() {
                exited.push(*service);
            }
        }
        for service in &exited {
            self.spawn(service)?;
        }
        Ok(exited)
    }

    /// Stops one service the hard way (kill -9), as a crash would.
    pub async fn kill(&mut self, service: &str) -> anyhow::Result<()> {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(s, _)| *s == service)
            .context("no such service")?;
        child.kill().await?;
        Ok(())
    }

    /// The log lines in which the NATS server refused a service something (a permission its role lacks).
    pub fn refusals(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.logs) else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for entry in entries.flatten() {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let name = entry.file_name().to_string_lossy().to_string();
            lines.extend(
                log.lines()
                    .filter(|line| line.contains(backorder_runtime::nats::REFUSED))
                    .map(|line| format!("{name}: {line}")),
            );
        }
        lines
    }

    /// Stops the services with SIGTERM (as an orchestrator would) and removes the prefix's streams and the
    /// database. Logs stay under `target/<profile>/e2e-logs/<prefix>/`.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for (service, child) in &mut self.children {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on a child we spawned and have not reaped yet, so the pid is still ours.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => bail!("{service} stopped with {status} on SIGTERM"),
                Ok(Err(error)) => return Err(error.into()),
                Err(_) => bail!("{service} did not stop within 15 s of SIGTERM"),
            }
        }
        // Every test exercises the services' NATS permissions: a request the server refused is a test failure
        // (the logs stay for a look).
        let refused = self.refusals();
        if !refused.is_empty() {
            bail!(
                "the NATS server refused requests of the services (see {}):\n{}",
                self.logs.display(),
                refused.join("\n")
            );
        }
        delete_streams(&self.bus).await?;
        self.db.close().await;
        let mut conn = self.admin.connect().await?;
        drop_database(&mut conn, &self.database).await?;
        let _ = std::fs::remove_dir_all(&self.logs);
        Ok(())
    }
}

/// Where cargo put the service binaries: beside the directory of the running test binary
/// (`target/<profile>/deps/..`), or `BO_BIN_DIR`.
pub fn binaries_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("BO_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("test binary has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    for service in SERVICES {
        if !dir.join(service).exists() {
            bail!(
                "{} is missing: build the services first (`cargo build --workspace --bins`, as `make test` does)",
                dir.join(service).display()
            );
        }
    }
    Ok(dir)
}

/// `e2e-<secs>-...` (streams: upper case, databases: `_`) older than an hour.
fn is_stale(name: &str, now: u64) -> bool {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    let Some(rest) = lower.strip_prefix("e2e-") else {
        return false;
    };
    let secs = rest.split('-').next().and_then(|s| s.parse::<u64>().ok());
    secs.is_some_and(|secs| secs + STALE_AFTER_SECS < now)
}

async fn remove_stale_databases(admin: &PgConnectOptions, now: u64) -> anyhow::Result<()> {
    let mut conn = admin.connect().await?;
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'e2e\\_%'")
            .fetch_all(&mut conn)
            .await?;
    for name in names.into_iter().filter(|n| is_stale(n, now)) {
        let _ = drop_database(&mut conn, &name).await;
    }
    Ok(())
}

/// Drops a database of the tests' or benches' own, whoever is still connected to it.
pub async fn drop_database(conn: &mut sqlx::PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop database if exists \"{name}\" with (force)"
    )))
    .execute(conn)
    .await?;
    Ok(())
}

async fn remove_stale_streams(bus: &Bus, now: u64) -> anyhow::Result<()> {
    let mut names = bus.js.stream_names();
    let mut stale = Vec::new();
    while let Some(name) = names.next().await {
        let name = name?;
        if is_stale(&name, now) {
            stale.push(name);
        }
    }
    for name in stale {
        let _ = bus.js.delete_stream(&name).await;
    }
    Ok(())
}

/// `GET path` on `addr` over plain HTTP/1.0: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_test_resources_are_stale() {
        assert!(is_stale("E2E-100-ABCD_IN", 100 + STALE_AFTER_SECS + 1));
        assert!(is_stale("e2e_100_abcd", 100 + STALE_AFTER_SECS + 1));
        assert!(!is_stale("e2e_100_abcd", 200));
        assert!(!is_stale("BO_IN", u64::MAX));
    }
}
