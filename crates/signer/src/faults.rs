//! Logging a fault that lasts: one ERROR when it starts, a reminder at most every interval while it
//! lasts (with how many failures were not logged), one INFO when it ends.
//!
//! A database outage fails every request; logging each one buries the one line an operator needs.
//! [`FaultLog::failed`] and [`FaultLog::succeeded`] are called on every outcome; the success path costs
//! one atomic load while nothing is wrong.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The fault state of one dependency (e.g. the slashing database).
#[derive(Debug)]
pub struct FaultLog {
    what: &'static str,
    remind_every: Duration,
    faulted: AtomicBool,
    state: Mutex<Option<Fault>>,
}

#[derive(Debug)]
struct Fault {
    since: Instant,
    last_logged: Instant,
    failures: u64,
    unlogged: u64,
}

impl FaultLog {
    /// A fault log for `what` (named in every line), reminding at most every `remind_every`.
    pub fn new(what: &'static str, remind_every: Duration) -> Self {
        Self {
            what,
            remind_every,
            faulted: AtomicBool::new(false),
            state: Mutex::new(None),
        }
    }

    /// Whether the last outcome was a failure.
    pub fn is_faulted(&self) -> bool {
        self.faulted.load(Ordering::Acquire)
    }

    /// Records a failure: logs it at ERROR if it starts a fault, as a reminder if the last line is
    /// older than the interval, and not at all otherwise.
    pub fn failed(&self, error: &dyn Display) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        match state.as_mut() {
            None => {
                tracing::error!(error = %error, "{} failed; requests that need it answer 503 until it recovers", self.what);
                *state = Some(Fault {
                    since: now,
                    last_logged: now,
                    failures: 1,
                    unlogged: 0,
                });
                self.faulted.store(true, Ordering::Release);
            }
            Some(fault) => {
                fault.failures += 1;
                if now.duration_since(fault.last_logged) >= self.remind_every {
                    tracing::warn!(
                        error = %error,
                        seconds = fault.since.elapsed().as_secs(),
                        failures = fault.failures,
                        "{} still failing ({} failures not logged since the last line)",
                        self.what,
                        fault.unlogged,
                    );
                    fault.last_logged = now;
                    fault.unlogged = 0;
                } else {
                    fault.unlogged += 1;
                }
            }
        }
    }

    /// Records a success: ends a fault with one INFO line.
    pub fn succeeded(&self) {
        if !self.is_faulted() {
            return;
        }
        let mut state = lock(&self.state);
        if let Some(fault) = state.take() {
            self.faulted.store(false, Ordering::Release);
            tracing::info!(
                seconds = fault.since.elapsed().as_secs_f64(),
                failures = fault.failures,
                "{} recovered",
                self.what
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_starts_lasts_and_ends() {
        let log = FaultLog::new("the test store", Duration::from_secs(3600));
        assert!(!log.is_faulted());
        log.succeeded();
        for _ in 0..1000 {
            log.failed(&"down");
        }
        assert!(log.is_faulted());
        {
            let state = lock(&log.state);
            let fault = state.as_ref().unwrap();
            assert_eq!(fault.failures, 1000);
            // One line logged (the first); every other failure waits for a reminder.
            assert_eq!(fault.unlogged, 999);
        }
        log.succeeded();
        assert!(!log.is_faulted());
        assert!(lock(&log.state).is_none());
    }

    #[test]
    fn reminders_come_after_the_interval() {
        let log = FaultLog::new("the test store", Duration::ZERO);
        log.failed(&"down");
        log.failed(&"down");
        let state = lock(&log.state);
        assert_eq!(state.as_ref().unwrap().unlogged, 0);
    }
}
