//! Cancellation: a [`Deadline`] (an instant, a cancel flag, or both) that a request carries,
//! and the [`Budget`] every walk ticks so that work stops soon after the caller gave up.
//!
//! A walk calls [`Budget::tick`] once per step (a goal of a check, a node of an expand, a
//! fact of a lookup); the clock is read only every [`TICKS_PER_CLOCK_READ`] ticks, so a
//! tick costs an atomic increment. An expired deadline is [`EngineError::DeadlineExceeded`],
//! never a partial answer that looks complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::EngineError;

/// How many ticks pass between two reads of the clock.
pub const TICKS_PER_CLOCK_READ: u32 = 256;

/// When a request stops being worth answering: at an instant, when a flag is raised, or
/// never ([`Deadline::none`], the default).
#[derive(Clone, Debug, Default)]
pub struct Deadline {
    at: Option<Instant>,
    cancelled: Option<Arc<AtomicBool>>,
}

impl Deadline {
    /// No deadline: the walk runs until it is done (bounded by the engine's limits).
    pub const fn none() -> Self {
        Self {
            at: None,
            cancelled: None,
        }
    }

    /// Stops at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self {
            at: Some(instant),
            cancelled: None,
        }
    }

    /// Stops `duration` from now (no deadline if that instant cannot be represented).
    pub fn after(duration: Duration) -> Self {
        Self {
            at: Instant::now().checked_add(duration),
            cancelled: None,
        }
    }

    /// Also stops as soon as `flag` is set (for example when the client disconnects).
    pub fn with_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancelled = Some(flag);
        self
    }

    /// Whether the deadline passed or the flag is set.
    pub fn is_expired(&self) -> bool {
        self.cancelled
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
            || self.at.is_some_and(|at| Instant::now() >= at)
    }

    fn is_none(&self) -> bool {
        self.at.is_none() && self.cancelled.is_none()
    }
}

/// A request's deadline as the walks see it: ticked once per step.
#[derive(Debug)]
pub(crate) struct Budget {
    deadline: Deadline,
    ticks: AtomicU32,
}

/// The budget of a walk nobody can cancel (tests, internal walks).
#[cfg(test)]
pub(crate) static UNBOUNDED: Budget = Budget::new(Deadline::none());

impl Budget {
    pub const fn new(deadline: Deadline) -> Self {
        Self {
            deadline,
            ticks: AtomicU32::new(0),
        }
    }

    /// One step of a walk: [`EngineError::DeadlineExceeded`] once the deadline passed
    /// (noticed within [`TICKS_PER_CLOCK_READ`] steps).
    #[inline]
    pub fn tick(&self) -> Result<(), EngineError> {
        if self.deadline.is_none() {
            return Ok(());
        }
        let ticks = self.ticks.fetch_add(1, Ordering::Relaxed);
        if ticks.is_multiple_of(TICKS_PER_CLOCK_READ) {
            return self.check();
        }
        Ok(())
    }

    /// Reads the clock now: before a request starts, and between chunks of work.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.deadline.is_expired() {
            return Err(EngineError::DeadlineExceeded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_deadline_stops_within_one_clock_read() {
        let budget = Budget::new(Deadline::at(Instant::now()));
        let failed_at = (0..=TICKS_PER_CLOCK_READ).position(|_| budget.tick().is_err());
        assert_eq!(failed_at, Some(0));
        assert!(matches!(budget.check(), Err(EngineError::DeadlineExceeded)));
    }

    #[test]
    fn a_raised_flag_cancels_and_no_deadline_never_does() {
        let flag = Arc::new(AtomicBool::new(false));
        let budget = Budget::new(Deadline::none().with_flag(Arc::clone(&flag)));
        assert!(budget.check().is_ok());
        flag.store(true, Ordering::Relaxed);
        assert!(budget.check().is_err());
        for _ in 0..1000 {
            assert!(UNBOUNDED.tick().is_ok());
        }
        let far = Budget::new(Deadline::after(Duration::from_secs(3600)));
        assert!((0..1000).all(|_| far.tick().is_ok()));
    }
}
