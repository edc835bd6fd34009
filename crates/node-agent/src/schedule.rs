//! When the next pass is due. While everything is in sync: after the drift interval (or
//! sooner, woken by a change of the desired file or a signal). While something is not and a
//! pass soon could change that (a failing health check, a unit still starting, an apt error):
//! after [`RETRY_FAST`], [`RETRY_SLOW`] once [`FAST_TRIES`] such passes came in a row, never
//! later than the drift interval; back to the drift interval as soon as all is in sync.

use std::time::Duration;

pub const RETRY_FAST: Duration = Duration::from_secs(5);
pub const RETRY_SLOW: Duration = Duration::from_secs(30);
pub const FAST_TRIES: u32 = 10;

#[derive(Debug, Clone)]
pub struct Schedule {
    drift: Duration,
    /// Passes in a row that left something to retry.
    streak: u32,
}

/// The wait before the next pass, and whether it is a retry (the pass's trigger) or drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub after: Duration,
    pub retry: bool,
}

impl Schedule {
    pub fn new(drift: Duration) -> Schedule {
        Schedule { drift, streak: 0 }
    }

    /// After a pass: `wants_retry` when it left something not in sync that a pass soon could fix.
    pub fn after_pass(&mut self, wants_retry: bool) -> Next {
        if !wants_retry {
            self.streak = 0;
            return Next {
                after: self.drift,
                retry: false,
            };
        }
        self.streak = self.streak.saturating_add(1);
        let retry = if self.streak <= FAST_TRIES {
            RETRY_FAST
        } else {
            RETRY_SLOW
        };
        if retry >= self.drift {
            Next {
                after: self.drift,
                retry: false,
            }
        } else {
            Next {
                after: retry,
                retry: true,
            }
        }
    }

    /// A new desired state: its items get fast retries from the start.
    pub fn reset(&mut self) {
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_shorten_back_off_and_reset() {
        let drift = Duration::from_secs(60);
        let mut s = Schedule::new(drift);
        let idle = Next {
            after: drift,
            retry: false,
        };
        assert_eq!(s.after_pass(false), idle);
        for _ in 0..FAST_TRIES {
            assert_eq!(
                s.after_pass(true),
                Next {
                    after: RETRY_FAST,
                    retry: true
                }
            );
        }
        for _ in 0..3 {
            assert_eq!(s.after_pass(true).after, RETRY_SLOW);
        }
        // All in sync: the drift interval again, and the next problem starts fast.
        assert_eq!(s.after_pass(false), idle);
        assert_eq!(s.after_pass(true).after, RETRY_FAST);
        for _ in 0..FAST_TRIES {
            s.after_pass(true);
        }
        assert_eq!(s.after_pass(true).after, RETRY_SLOW);
        s.reset();
        assert_eq!(s.after_pass(true).after, RETRY_FAST);
    }

    #[test]
    fn never_later_than_the_drift_interval() {
        let mut s = Schedule::new(Duration::from_secs(3));
        assert_eq!(
            s.after_pass(true),
            Next {
                after: Duration::from_secs(3),
                retry: false
            }
        );
        let mut s = Schedule::new(Duration::from_secs(10));
        for _ in 0..FAST_TRIES {
            assert_eq!(s.after_pass(true).after, RETRY_FAST);
        }
        assert_eq!(
            s.after_pass(true),
            Next {
                after: Duration::from_secs(10),
                retry: false
            }
        );
    }
}
