//! How the background loops are doing, for `/readyz`.
//!
//! Each loop (scheduler, dispatcher, lease renewal) reports after every round. The process is
//! ready only when every loop that has started reports success and none has gone quiet: a loop
//! whose rounds keep failing (a corrupt database file, a lost connection) or that stopped
//! reporting makes `/readyz` answer 503 with the reason. Loops that never started (tests that
//! drive rounds by hand) are not judged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared health of the background loops (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Health {
    loops: Arc<Mutex<BTreeMap<&'static str, LoopState>>>,
}

#[derive(Debug, Clone)]
struct LoopState {
    last_report: Instant,
    /// The error of the latest round, if it failed.
    failing: Option<String>,
}

/// A loop that has not reported for this long counts as stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(90);

impl Health {
    /// Records a successful round of `what`.
    pub fn ok(&self, what: &'static str) {
        self.report(what, None);
    }

    /// Records a failed round of `what`.
    pub fn failed(&self, what: &'static str, error: impl std::fmt::Display) {
        self.report(what, Some(error.to_string()));
    }

    fn report(&self, what: &'static str, failing: Option<String>) {
        if let Ok(mut loops) = self.loops.lock() {
            loops.insert(
                what,
                LoopState {
                    last_report: Instant::now(),
                    failing,
                },
            );
        }
    }

    /// Forgets `what` (its loop ended on purpose).
    pub fn stopped(&self, what: &'static str) {
        if let Ok(mut loops) = self.loops.lock() {
            loops.remove(what);
        }
    }

    /// Why the process is not ready, one sentence per unhealthy loop; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        self.problems_at(Instant::now())
    }

    fn problems_at(&self, now: Instant) -> Vec<String> {
        let Ok(loops) = self.loops.lock() else {
            return vec!["health state is unavailable".into()];
        };
        loops
            .iter()
            .filter_map(|(what, state)| match &state.failing {
                Some(error) => Some(format!("the {what} is failing: {error}")),
                None if now.duration_since(state.last_report) > STALL_AFTER => Some(format!(
                    "the {what} has not finished a round for {} s",
                    now.duration_since(state.last_report).as_secs()
                )),
                None => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_loop_is_reported_until_it_recovers() {
        let h = Health::default();
        assert!(h.problems().is_empty(), "no loop started yet");
        h.ok("scheduler");
        h.failed("dispatcher", "database disk image is malformed");
        assert_eq!(
            h.problems(),
            vec!["the dispatcher is failing: database disk image is malformed".to_string()]
        );
        h.ok("dispatcher");
        assert!(h.problems().is_empty());
    }

    #[test]
    fn a_quiet_loop_counts_as_stuck() {
        let h = Health::default();
        h.ok("scheduler");
        let later = Instant::now() + STALL_AFTER + Duration::from_secs(5);
        let problems = h.problems_at(later);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("has not finished a round"),
            "{problems:?}"
        );
    }
}
