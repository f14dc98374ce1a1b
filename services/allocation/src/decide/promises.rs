//! What a customer is owed about dates, as pure decisions: which orders a line's new date concerns when a SKU
//! is re-projected ([`redated`]), and, per order at the end of a batch, whether the customer is asked to
//! consent to a delay, told of a date change, or not yet ([`keep_promises`]).
//!
//! The rules:
//! - A waiting line is **too late** when its date is more than `consent_after` past the date first promised.
//!   When a re-projection of the batch made a line of the order too late, no question is pending and none was
//!   settled in this batch, the customer is asked (`DELAY_CONSENT_REQUIRED`) and has `consent_wait` to answer;
//!   a date notice owed is dropped, as the question carries the dates.
//! - Otherwise a date notice owed is due `eta_interval` after the last one at the earliest (coalescing); when it
//!   is due, `ETA_CHANGED` names the waiting lines whose date is off by `eta_threshold` or more from the date
//!   told, and nothing goes out when none is any more.
//! - An answer to the question, or its deadline passing, settles it: the question is cleared.
//! - A line named in a question or a notice is told its date (the engine stores it as the date told).

use backorder_runtime::limits::add;
use chrono::{DateTime, Duration, Utc};

/// The policy's settings for promises (see `engine::Policy`).
#[derive(Debug, Clone, Copy)]
pub struct PromiseRules {
    /// The least move of a date the customer is told about.
    pub threshold: Duration,
    /// At most one date notice per order in this interval.
    pub interval: Duration,
    /// A date this far past the first one promised needs the customer's consent.
    pub consent_after: Duration,
    /// How long the customer has to answer.
    pub consent_wait: Duration,
}

/// An order's promise timers, as stored on the order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timers {
    /// When a date notice owed goes out.
    pub notify_due: Option<DateTime<Utc>>,
    /// When the last one went out.
    pub notified_at: Option<DateTime<Utc>>,
    /// The deadline of a pending question.
    pub consent_due: Option<DateTime<Utc>>,
}

/// A line's dates: its current date, the one the customer was last told, the one first promised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dates {
    pub backordered: i64,
    pub eta: Option<DateTime<Utc>>,
    pub told: Option<DateTime<Utc>>,
    pub promised: Option<DateTime<Utc>>,
}

/// What the batch found for an order ([`redated`] over its lines, and the commands).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    /// A line told a date is now off by the threshold or more.
    pub eta_owed: bool,
    /// A line is now too late.
    pub consent_needed: bool,
    /// A pending question was answered or its deadline passed.
    pub consent_settled: bool,
}

/// What the customer hears about dates, with the lines it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateNotice {
    ConsentAsked {
        respond_by: DateTime<Utc>,
        lines: Vec<bool>,
    },
    EtaChanged {
        lines: Vec<bool>,
    },
}

impl DateNotice {
    /// Per line: named by the notice (and so told its date).
    pub fn lines(&self) -> &[bool] {
        match self {
            DateNotice::ConsentAsked { lines, .. } | DateNotice::EtaChanged { lines } => lines,
        }
    }
}

/// The order's new timers and what it is told, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseDecision {
    pub timers: Timers,
    pub notice: Option<DateNotice>,
}

/// What a line's new date means for its order; `None` when nothing changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redated {
    /// The date moved by the threshold or more, or became (or stopped being) an estimate or late: the order
    /// gets a new status.
    pub moved: bool,
    /// The customer was told a date that is now off by the threshold or more.
    pub owed: bool,
    /// The new date is too late.
    pub consent_needed: bool,
}

impl Redated {
    pub fn concerns_order(&self) -> bool {
        self.moved || self.owed || self.consent_needed
    }
}

/// A line's date as a projection gives it: the date and whether it is an estimate and late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dated {
    pub at: DateTime<Utc>,
    pub estimated: bool,
    pub late: bool,
}

fn apart(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (a - b).abs()
}

/// A line dated `old` (with its dates told and promised) is re-projected to `new`. `None` when it keeps its
/// date and flags: the line is not rewritten.
pub fn redated(
    old: Option<Dated>,
    dates: &Dates,
    new: Dated,
    rules: &PromiseRules,
) -> Option<Redated> {
    let flags_changed = old.is_some_and(|o| (o.estimated, o.late) != (new.estimated, new.late));
    if old.map(|o| o.at) == Some(new.at) && !flags_changed {
        return None;
    }
    Some(Redated {
        moved: old.is_some_and(|o| flags_changed || apart(new.at, o.at) >= rules.threshold),
        owed: dates
            .told
            .is_some_and(|told| apart(new.at, told) >= rules.threshold),
        consent_needed: dates
            .promised
            .is_some_and(|first| new.at > add(first, rules.consent_after)),
    })
}

/// The waiting lines whose date is more than `consent_after` past the date first promised.
pub fn too_late(lines: &[Dates], consent_after: Duration) -> Vec<bool> {
    lines
        .iter()
        .map(|l| {
            l.backordered > 0
                && matches!((l.eta, l.promised), (Some(eta), Some(first)) if eta > add(first, consent_after))
        })
        .collect()
}

/// The waiting lines whose date is off by `threshold` or more from the date told.
pub fn off_by(lines: &[Dates], threshold: Duration) -> Vec<bool> {
    lines
        .iter()
        .map(|l| {
            l.backordered > 0
                && matches!((l.eta, l.told), (Some(eta), Some(told)) if apart(eta, told) >= threshold)
        })
        .collect()
}

/// Decides an order's question or date notice at the end of a batch (see the module's rules).
pub fn keep_promises(
    mut timers: Timers,
    lines: &[Dates],
    found: Found,
    rules: &PromiseRules,
    now: DateTime<Utc>,
) -> PromiseDecision {
    if found.consent_settled {
        timers.consent_due = None;
    }
    let late = too_late(lines, rules.consent_after);
    if found.consent_needed
        && timers.consent_due.is_none()
        && !found.consent_settled
        && late.contains(&true)
    {
        let respond_by = add(now, rules.consent_wait);
        timers.consent_due = Some(respond_by);
        timers.notify_due = None;
        let notice = DateNotice::ConsentAsked {
            respond_by,
            lines: late,
        };
        return PromiseDecision {
            timers,
            notice: Some(notice),
        };
    }
    if found.eta_owed && timers.notify_due.is_none() {
        let earliest = timers
            .notified_at
            .map_or(now, |last| add(last, rules.interval));
        timers.notify_due = Some(earliest.max(now));
    }
    let mut notice = None;
    if timers.notify_due.is_some_and(|due| due <= now) {
        timers.notify_due = None;
        let off = off_by(lines, rules.threshold);
        if off.contains(&true) {
            timers.notified_at = Some(now);
            notice = Some(DateNotice::EtaChanged { lines: off });
        }
    }
    PromiseDecision { timers, notice }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap()
    }

    fn rules() -> PromiseRules {
        PromiseRules {
            threshold: Duration::days(1),
            interval: Duration::days(1),
            consent_after: Duration::days(10),
            consent_wait: Duration::days(7),
        }
    }

    fn waiting(eta: u32, told: u32, promised: u32) -> Dates {
        Dates {
            backordered: 5,
            eta: Some(day(eta)),
            told: Some(day(told)),
            promised: Some(day(promised)),
        }
    }

    fn dated(at: u32) -> Dated {
        Dated {
            at: day(at),
            estimated: false,
            late: false,
        }
    }

    #[test]
    fn a_line_too_late_asks_for_consent_drops_the_owed_notice_and_names_only_that_line() {
        // given a line promised on the 2nd now expected on the 15th, and one on time
        let lines = [waiting(15, 3, 2), waiting(4, 4, 4)];
        let timers = Timers {
            notify_due: Some(day(20)),
            ..Timers::default()
        };
        let found = Found {
            consent_needed: true,
            eta_owed: true,
            ..Found::default()
        };
        // when
        let decision = keep_promises(timers, &lines, found, &rules(), day(5));
        // then
        assert_eq!(
            decision.notice,
            Some(DateNotice::ConsentAsked {
                respond_by: day(12),
                lines: vec![true, false],
            })
        );
        assert_eq!(decision.timers.consent_due, Some(day(12)));
        assert_eq!(decision.timers.notify_due, None);
    }

    #[test]
    fn a_pending_question_is_not_asked_again_and_an_answer_clears_it() {
        let lines = [waiting(15, 15, 2)];
        let pending = Timers {
            consent_due: Some(day(9)),
            ..Timers::default()
        };
        let needed = Found {
            consent_needed: true,
            ..Found::default()
        };
        let again = keep_promises(pending, &lines, needed, &rules(), day(5));
        assert_eq!(again.notice, None);
        assert_eq!(again.timers, pending);

        let settled = Found {
            consent_needed: true,
            consent_settled: true,
            ..Found::default()
        };
        let answered = keep_promises(pending, &lines, settled, &rules(), day(5));
        assert_eq!(
            answered.notice, None,
            "settled in this batch: not asked again at once"
        );
        assert_eq!(answered.timers.consent_due, None);
    }

    #[test]
    fn a_date_notice_owed_waits_for_the_interval_after_the_last_one() {
        // given the customer was told of a change three hours ago
        let lines = [waiting(8, 5, 5)];
        let now = day(6);
        let timers = Timers {
            notified_at: Some(now - Duration::hours(3)),
            ..Timers::default()
        };
        let owed = Found {
            eta_owed: true,
            ..Found::default()
        };
        // when a new change is owed
        let decision = keep_promises(timers, &lines, owed, &rules(), now);
        // then it is due a day after the last one, and nothing goes out yet
        assert_eq!(decision.notice, None);
        assert_eq!(decision.timers.notify_due, Some(now + Duration::hours(21)));
    }

    #[test]
    fn a_due_notice_names_the_lines_off_by_the_threshold_and_stamps_the_time() {
        let lines = [waiting(8, 5, 5), waiting(5, 5, 5), Dates::default()];
        let timers = Timers {
            notify_due: Some(day(6)),
            ..Timers::default()
        };
        let decision = keep_promises(timers, &lines, Found::default(), &rules(), day(6));
        assert_eq!(
            decision.notice,
            Some(DateNotice::EtaChanged {
                lines: vec![true, false, false]
            })
        );
        assert_eq!(decision.timers.notified_at, Some(day(6)));
        assert_eq!(decision.timers.notify_due, None);
    }

    #[test]
    fn a_due_notice_that_moved_back_within_the_threshold_sends_nothing_and_clears_the_timer() {
        let lines = [waiting(5, 5, 5)];
        let timers = Timers {
            notify_due: Some(day(6)),
            notified_at: Some(day(1)),
            ..Timers::default()
        };
        let decision = keep_promises(timers, &lines, Found::default(), &rules(), day(7));
        assert_eq!(decision.notice, None);
        assert_eq!(
            decision.timers,
            Timers {
                notify_due: None,
                notified_at: Some(day(1)),
                consent_due: None,
            }
        );
    }

    #[test]
    fn a_line_no_longer_waiting_is_never_named() {
        let mut filled = waiting(20, 3, 2);
        filled.backordered = 0;
        assert_eq!(too_late(&[filled], Duration::days(10)), vec![false]);
        assert_eq!(off_by(&[filled], Duration::days(1)), vec![false]);
    }

    #[test]
    fn a_new_date_concerns_the_order_only_by_the_threshold_or_by_a_flag() {
        let dates = waiting(5, 5, 5);
        let r = rules();
        assert_eq!(redated(Some(dated(5)), &dates, dated(5), &r), None);
        let nudged = redated(
            Some(dated(5)),
            &dates,
            Dated {
                at: day(5) + Duration::hours(2),
                ..dated(5)
            },
            &r,
        )
        .expect("rewritten");
        assert!(!nudged.concerns_order());
        let late = Dated {
            late: true,
            ..dated(5)
        };
        let flagged = redated(Some(dated(5)), &dates, late, &r).expect("rewritten");
        assert_eq!(
            flagged,
            Redated {
                moved: true,
                owed: false,
                consent_needed: false
            }
        );
        let slipped = redated(Some(dated(5)), &dates, dated(16), &r).expect("rewritten");
        assert_eq!(
            slipped,
            Redated {
                moved: true,
                owed: true,
                consent_needed: true
            }
        );
    }

    #[test]
    fn a_first_date_moves_nobody() {
        let undated = Dates {
            backordered: 5,
            ..Dates::default()
        };
        assert_eq!(
            redated(None, &undated, dated(9), &rules()),
            Some(Redated::default())
        );
    }
}
