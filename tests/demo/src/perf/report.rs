//! The report `backorder-perf` prints: each phase's figures and ratios, then every target with met / NOT
//! MET. A phase that failed prints why instead of its figures; the targets that need it say "not measured".

use std::time::Duration;

use super::baseline;
use super::cpu::CpuUse;
use super::eta;
use super::flow::{Drained, FlatOut, LINES_PER_ORDER, Latency, Receipt, SKUS};
use super::ms;

/// A phase's figures, or why there are none.
pub type Phase<T> = Result<T, String>;

pub struct Run {
    pub label: String,
    pub phase: Duration,
    pub baseline: Phase<baseline::Figures>,
    pub flat: Phase<FlatOut>,
    pub drained: Phase<Vec<Drained>>,
    pub latency: Phase<Latency>,
    pub receipt: Phase<Receipt>,
    pub eta: Phase<eta::Figures>,
    pub rss: Phase<Vec<(&'static str, f64)>>,
    pub dead_letters: Phase<u64>,
}

/// Ratios below these (or above, for "at most") miss their target.
pub const E2E_RATIO: f64 = 2.5;
pub const DRAIN_SECS: f64 = 5.0;
pub const P99_RATIO: f64 = 20.0;
pub const RECEIPT_RATIO: f64 = 2.5;
pub const ETA_RATIO: f64 = 5.0;
pub const RSS_MB: f64 = 50.0;

/// The consumers the drain target is about.
fn drain_target(consumer: &str) -> bool {
    consumer.starts_with("replenishment-trigger") || consumer.starts_with("notifier")
}

/// `12,345` for whole figures.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

impl Run {
    pub fn print(&self) {
        println!("backorder-perf ({})\n", self.label);
        self.print_baselines();
        self.print_pipeline();
        self.print_latency_and_receipt();
        self.print_eta_and_rss();
        self.print_targets();
    }

    fn tps_16(&self) -> Option<f64> {
        self.baseline.as_ref().ok().map(|b| b.tps_16)
    }

    fn print_baselines(&self) {
        let secs = self.phase.as_secs_f64();
        println!(
            "1. Baseline: one transaction per order line on plain PostgreSQL (SELECT ... FOR UPDATE, UPDATE, INSERT, COMMIT; {SKUS} SKUs)"
        );
        match &self.baseline {
            Ok(b) => {
                println!(
                    "   16 clients, {secs:.0} s:  {:>9} tx/s",
                    thousands(b.tps_16)
                );
                println!(
                    "    1 client,  {secs:.0} s:  {:>9} tx/s, mean latency {:.2} ms",
                    thousands(b.tps_1),
                    ms(b.mean_1)
                );
                println!(
                    "2. Bulk-write limit: 1,000 lines per transaction, each with an audit and an outbox row (unnest), 2 clients, {secs:.0} s"
                );
                println!(
                    "                     {:>9} lines/s ({:.1}x the 16-client tx/s)",
                    thousands(b.bulk_lines),
                    b.bulk_lines / b.tps_16
                );
            }
            Err(e) => println!("   not measured: {e}\n2. Bulk-write limit: not measured"),
        }
        println!();
    }

    fn print_pipeline(&self) {
        println!(
            "3. End to end, flat out: orders of {LINES_PER_ORDER} lines over {SKUS} SKUs, ~70% of the demand in stock"
        );
        match &self.flat {
            Ok(f) => {
                println!(
                    "   {} orders published in {:.2} s; the last one's first OrderStatus after {:.2} s",
                    thousands(f.orders as f64),
                    f.published.as_secs_f64(),
                    f.elapsed.as_secs_f64()
                );
                let ratio = self.tps_16().map_or("no baseline".into(), |t| {
                    format!("{:.2}x", f.lines_per_sec() / t)
                });
                println!(
                    "   {:>9} order lines/s = {ratio} the 16-client baseline tx/s (target >= {E2E_RATIO}x)",
                    thousands(f.lines_per_sec())
                );
                print_cpu(f.cpu.as_ref());
            }
            Err(e) => println!("   not measured: {e}"),
        }
        println!(
            "\n4. Drain: each durable consumer settled (nothing stored for it or in hand), after the last first status"
        );
        match &self.drained {
            Ok(consumers) => {
                for d in consumers {
                    let after = d.after.map_or("not settled".into(), |a| {
                        format!("{:.2} s", a.as_secs_f64())
                    });
                    let target = if drain_target(&d.consumer) {
                        format!("(target <= {DRAIN_SECS:.0} s)")
                    } else {
                        String::new()
                    };
                    // The stream's role (IN, INTERNAL, OUT) says enough; the prefix is the run's own.
                    let stream = d.stream.rsplit('_').next().unwrap_or(&d.stream);
                    let name = format!("{stream}/{}", d.consumer);
                    println!("   {name:<40} {after:>10} {target}");
                }
            }
            Err(e) => println!("   not measured: {e}"),
        }
        println!();
    }

    fn print_latency_and_receipt(&self) {
        println!("5. Latency at 50% of the flat-out capacity: publish -> first OrderStatus");
        match &self.latency {
            Ok(l) => {
                println!(
                    "   {} orders at {:.0} orders/s: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
                    thousands(l.orders as f64),
                    l.rate,
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99)
                );
                if let Ok(b) = &self.baseline {
                    println!(
                        "   p99 = {:.1}x the 1-client baseline mean latency (target <= {P99_RATIO:.0}x)",
                        ms(l.p99) / ms(b.mean_1)
                    );
                }
            }
            Err(e) => println!("   not measured: {e}"),
        }
        println!(
            "\n6. One receipt filling backordered lines (one-line orders of one SKU without stock)"
        );
        match &self.receipt {
            Ok(r) => {
                println!(
                    "   {} lines: every AllocationCreated after {:.2} s, every ALLOCATED status after {:.2} s",
                    thousands(r.lines as f64),
                    r.allocations.as_secs_f64(),
                    r.statuses.as_secs_f64()
                );
                let ratio = self.tps_16().map_or("no baseline".into(), |t| {
                    format!("{:.2}x", r.lines_per_sec() / t)
                });
                println!(
                    "   {:>9} lines/s = {ratio} the 16-client baseline tx/s (target >= {RECEIPT_RATIO}x)",
                    thousands(r.lines_per_sec())
                );
                print_cpu(r.cpu.as_ref());
            }
            Err(e) => println!("   not measured: {e}"),
        }
        println!();
    }

    fn print_eta_and_rss(&self) {
        println!("7. ETA re-projection of one SKU, nothing moving");
        match &self.eta {
            Ok(e) => {
                println!(
                    "   {} open lines, {} PO lines: pure projection {:.1} ms, in the engine's transaction {:.1} ms ({} ETAs changed)",
                    thousands(e.lines as f64),
                    thousands(e.supply_lines as f64),
                    ms(e.pure),
                    ms(e.in_transaction),
                    e.changed
                );
                println!(
                    "   in transaction = {:.1}x pure (target <= {ETA_RATIO:.0}x)",
                    ms(e.in_transaction) / ms(e.pure)
                );
            }
            Err(e) => println!("   not measured: {e}"),
        }
        println!(
            "\n8. Peak RSS (VmHWM) of each service process at the end (target < {RSS_MB:.0} MB each)"
        );
        match &self.rss {
            Ok(rss) => {
                for (service, mb) in rss {
                    println!("   {service:<24} {mb:>7.1} MB");
                }
            }
            Err(e) => println!("   not measured: {e}"),
        }
        match &self.dead_letters {
            Ok(0) => println!("   dead letters parked during the run: 0"),
            Ok(n) => println!(
                "   dead letters parked during the run: {n} (0 expected: failures or redeliveries skewed the figures; see the services' logs)"
            ),
            Err(e) => println!("   dead letters: not read: {e}"),
        }
        println!();
    }

    /// Every target: (what, figure against target, met); `None` when a figure is missing.
    fn targets(&self) -> Vec<(String, Option<(String, bool)>)> {
        let tps = self.tps_16();
        let e2e = self.flat.as_ref().ok().zip(tps).map(|(f, t)| {
            let r = f.lines_per_sec() / t;
            (format!("{r:.2}x >= {E2E_RATIO}x"), r >= E2E_RATIO)
        });
        let drained = self.drained.as_ref().ok().map(|all| {
            let ours: Vec<_> = all.iter().filter(|d| drain_target(&d.consumer)).collect();
            let worst = ours
                .iter()
                .map(|d| d.after.map_or(f64::INFINITY, |a| a.as_secs_f64()));
            let worst = worst.fold(0.0, f64::max);
            (
                format!("slowest {worst:.2} s <= {DRAIN_SECS:.0} s"),
                !ours.is_empty() && worst <= DRAIN_SECS,
            )
        });
        let p99 = self
            .latency
            .as_ref()
            .ok()
            .zip(self.baseline.as_ref().ok())
            .map(|(l, b)| {
                let r = ms(l.p99) / ms(b.mean_1);
                (format!("{r:.1}x <= {P99_RATIO:.0}x"), r <= P99_RATIO)
            });
        let receipt = self.receipt.as_ref().ok().zip(tps).map(|(r, t)| {
            let r = r.lines_per_sec() / t;
            (format!("{r:.2}x >= {RECEIPT_RATIO}x"), r >= RECEIPT_RATIO)
        });
        let eta = self.eta.as_ref().ok().map(|e| {
            let r = ms(e.in_transaction) / ms(e.pure);
            (format!("{r:.1}x <= {ETA_RATIO:.0}x"), r <= ETA_RATIO)
        });
        let rss = self.rss.as_ref().ok().map(|all| {
            let worst = all.iter().map(|(_, mb)| *mb).fold(0.0, f64::max);
            (
                format!("largest {worst:.1} MB < {RSS_MB:.0} MB"),
                all.len() == 4 && worst < RSS_MB,
            )
        });
        vec![
            ("end-to-end lines/s vs baseline tx/s".into(), e2e),
            ("replenishment & notifier drained".into(), drained),
            ("p99 latency vs 1-client mean".into(), p99),
            ("receipt lines/s vs baseline tx/s".into(), receipt),
            ("ETA in transaction vs pure".into(), eta),
            ("peak RSS per service".into(), rss),
        ]
    }

    fn print_targets(&self) {
        println!("Targets");
        for (what, figure) in self.targets() {
            match figure {
                Some((figure, met)) => println!("   {what:<38} {figure:<28} {}", verdict(met)),
                None => println!("   {what:<38} {:<28} not measured", ""),
            }
        }
    }
}

/// Where the cores went during a phase, as one line under its figures.
fn print_cpu(cpu: Option<&CpuUse>) {
    match cpu {
        Some(cpu) => println!("   CPU meanwhile: {}", cpu.line()),
        None => println!("   CPU meanwhile: not measured (/proc unreadable)"),
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
