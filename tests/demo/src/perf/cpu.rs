//! Where the cores went while a phase ran: CPU time per process from `/proc/<pid>/stat` and the machine's
//! from `/proc/stat`, so a phase's figures come with the profile that explains them. Processes are grouped as
//! the reader thinks of them: each service, the NATS server, PostgreSQL (its backends and workers together)
//! and the bench itself (publisher and watcher).

use std::collections::BTreeMap;

use anyhow::Context;

/// CPU ticks (user and system, all threads) per group, and the machine's, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    machine: Machine,
    groups: BTreeMap<String, u64>,
}

/// The machine's `cpu` line of `/proc/stat`: every tick, those not idle, and how many CPUs share them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Machine {
    total: u64,
    busy: u64,
    cpus: usize,
}

/// Cores used on average between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuUse {
    pub cpus: usize,
    pub busy: f64,
    /// Busiest first.
    pub groups: Vec<(String, f64)>,
}

/// Reads the machine and every process now; `services` are the bench's own children by name.
pub fn snapshot(services: &[(&'static str, u32)]) -> anyhow::Result<Snapshot> {
    let machine = machine_ticks(&std::fs::read_to_string("/proc/stat")?)
        .context("no cpu line in /proc/stat")?;
    let me = std::process::id();
    let mut groups: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read: it is simply not counted.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((command, ticks)) = process_ticks(&stat) else {
            continue;
        };
        if let Some(group) = group_of(pid, command, me, services) {
            *groups.entry(group).or_default() += ticks;
        }
    }
    Ok(Snapshot { machine, groups })
}

impl Snapshot {
    /// What each group used from this snapshot to `later`, in cores.
    pub fn until(&self, later: &Snapshot) -> CpuUse {
        let cpus = later.machine.cpus.max(1);
        let total = later
            .machine
            .total
            .saturating_sub(self.machine.total)
            .max(1) as f64;
        let cores = |ticks: u64| ticks as f64 / total * cpus as f64;
        let mut groups: Vec<(String, f64)> = later
            .groups
            .iter()
            .map(|(group, ticks)| {
                let before = self.groups.get(group).copied().unwrap_or(0);
                (group.clone(), cores(ticks.saturating_sub(before)))
            })
            .collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse {
            cpus,
            busy: cores(later.machine.busy.saturating_sub(self.machine.busy)),
            groups,
        }
    }
}

impl CpuUse {
    /// "1.96 of 2 cores busy: PostgreSQL 0.61, nats-server 0.58, ..." (groups under 0.01 cores left out).
    pub fn line(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, cores)| *cores >= 0.01)
            .map(|(group, cores)| format!("{group} {cores:.2}"))
            .collect();
        format!(
            "{:.2} of {} cores busy: {}",
            self.busy,
            self.cpus,
            groups.join(", ")
        )
    }
}

fn group_of(pid: u32, command: &str, me: u32, services: &[(&'static str, u32)]) -> Option<String> {
    if let Some((service, _)) = services.iter().find(|(_, p)| *p == pid) {
        return Some(service.to_string());
    }
    if pid == me {
        return Some("bench".into());
    }
    match command {
        "nats-server" => Some("nats-server".into()),
        "postgres" => Some("PostgreSQL".into()),
        _ => None,
    }
}

/// The command and the user plus system ticks of one `/proc/<pid>/stat`. The command is in parentheses and
/// may itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let command = stat.get(open + 1..close)?;
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the command: state (field 3 of proc(5)), ..., utime (14), stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((command, utime + stime))
}

/// The `cpu` line of `/proc/stat` (user nice system idle iowait irq softirq steal ...), and the number of
/// `cpuN` lines.
fn machine_ticks(stat: &str) -> Option<Machine> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(Machine {
        total,
        busy: total - idle,
        cpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_line_is_read_past_a_command_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 900 0 0 0 1500 250 0 0 20 0 9 0 \
                    123 456 789";
        assert_eq!(process_ticks(stat), Some(("tokio (rt) worker", 1750)));
        assert_eq!(process_ticks("12 (short) S 1 2"), None);
    }

    #[test]
    fn the_machine_line_counts_idle_and_iowait_as_not_busy() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n\
                    cpu1 50 3 25 400 20 2 1 0 0 0\nintr 1 2 3\n";
        assert_eq!(
            machine_ticks(stat),
            Some(Machine {
                total: 1000,
                busy: 160,
                cpus: 2
            })
        );
    }

    #[test]
    fn use_between_snapshots_is_in_cores_busiest_first() {
        let at = |total, busy, groups: &[(&str, u64)]| Snapshot {
            machine: Machine {
                total,
                busy,
                cpus: 2,
            },
            groups: groups.iter().map(|(g, t)| (g.to_string(), *t)).collect(),
        };
        let before = at(1_000, 200, &[("PostgreSQL", 100), ("allocation", 50)]);
        // 2,000 ticks over two CPUs: 1,000 ticks of wall time each.
        let after = at(
            3_000,
            1_800,
            &[("PostgreSQL", 700), ("allocation", 250), ("notifier", 400)],
        );
        let used = before.until(&after);
        assert_eq!(used.cpus, 2);
        assert!((used.busy - 1.6).abs() < 1e-9);
        let groups: Vec<(&str, f64)> = used.groups.iter().map(|(g, c)| (g.as_str(), *c)).collect();
        assert_eq!(
            groups,
            [("PostgreSQL", 0.6), ("notifier", 0.4), ("allocation", 0.2)]
        );
        assert_eq!(
            used.line(),
            "1.60 of 2 cores busy: PostgreSQL 0.60, notifier 0.40, allocation 0.20"
        );
    }
}
