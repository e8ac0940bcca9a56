//! Answering a check on the async worker that received it. A check usually takes
//! microseconds; handing it to the blocking pool costs more than the check itself (two
//! thread wake-ups and a task per request: measured at 64 connections, 87 µs of server CPU
//! per check through the pool against 56 µs inline, docs/BENCHMARKS.md).
//! So the JSON check and gRPC CheckPermission both first try [`check`] here: the check
//! runs inline with a deadline of [`INLINE_SLICE`] (or the request's own timeout, if
//! shorter). A check that does not finish in the slice answers `None`, and the caller runs
//! it again on the blocking pool under the request's deadline, so a long walk holds an
//! async worker for at most the slice and the request deadline still applies.

use std::time::Duration;

use super::AppState;
use crate::engine::{CheckParts, CheckRequest, Consistency, Deadline, Decision, EngineError};

/// How long a check may run on the async worker that received it.
pub const INLINE_SLICE: Duration = Duration::from_millis(2);

/// The check's answer when it could be given inline within the slice; `None` when it must
/// go to the blocking pool: it ran out of the slice, or the store is shared (a `full` read
/// then asks the store for its head, a network call that must not hold an async worker).
pub fn check(
    state: &AppState,
    request: &CheckRequest,
    mode: Consistency,
) -> Result<Option<Decision>, EngineError> {
    check_within(state, request, mode, INLINE_SLICE)
}

/// The check cache's answer to a question without context, looked up by its names as
/// the client sent them, before anything is validated or allocated
/// ([`crate::engine::Arbiter::cached_check`]); `None` (ask through [`check`]) when there
/// is none, or when the store is shared (`full` would ask the store for its head).
pub fn cached(state: &AppState, parts: &CheckParts<'_>, mode: Consistency) -> Option<Decision> {
    let engine = state.engine();
    if !engine.exclusive_store() {
        return None;
    }
    engine.cached_check(parts, mode)
}

/// [`check`] with the slice given.
fn check_within(
    state: &AppState,
    request: &CheckRequest,
    mode: Consistency,
    slice: Duration,
) -> Result<Option<Decision>, EngineError> {
    let engine = state.engine();
    if !engine.exclusive_store() {
        return Ok(None);
    }
    let quick = engine.with_deadline(Deadline::after(slice.min(state.config().request_timeout)));
    match quick.check(request, mode) {
        Err(EngineError::DeadlineExceeded) => Ok(None),
        other => other.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{self, Arbiter};
    use crate::server::ServerConfig;
    use crate::store::{Update, UpdateOp};

    const SCHEMA: &str = "definition user {}
definition document {
    relation viewer: user
    permission view = viewer
}";

    /// A server state over a sled store (this process its only writer) holding one
    /// relationship, with the request timeout given.
    fn state(request_timeout: Duration) -> AppState {
        let engine = Arbiter::temporary(engine::Config::default()).unwrap();
        engine.write_schema(SCHEMA).unwrap();
        let update = Update {
            op: UpdateOp::Touch,
            relationship: "document:1#viewer@user:alice".parse().unwrap(),
        };
        engine.write(&[update], &[]).unwrap().unwrap();
        let config = ServerConfig {
            request_timeout,
            ..ServerConfig::default()
        };
        AppState::new(engine, config)
    }

    fn request(resource: &str, permission: &str, subject: &str) -> CheckRequest {
        CheckRequest {
            resource: resource.parse().unwrap(),
            permission: permission.to_string(),
            subject: subject.parse().unwrap(),
            context: None,
        }
    }

    #[test]
    fn checks_that_finish_within_the_slice_are_answered_inline() {
        let state = state(Duration::from_secs(10));
        let cases = [("user:alice", true), ("user:bob", false)];
        for (subject, allowed) in cases {
            let request = request("document:1", "view", subject);
            let decision = check(&state, &request, Consistency::Full).unwrap();
            assert_eq!(decision.map(|it| it.allowed), Some(allowed), "{subject}");
        }
    }

    #[test]
    fn a_check_that_outlasts_its_slice_is_left_to_the_blocking_pool() {
        let state = state(Duration::from_secs(10));
        let request = request("document:1", "view", "user:alice");
        let answer = check_within(&state, &request, Consistency::Full, Duration::ZERO);
        assert!(matches!(answer, Ok(None)), "{answer:?}");
    }

    #[test]
    fn the_request_timeout_bounds_the_slice() {
        // A request timeout shorter than the slice is the inline deadline: nothing is
        // answered inline after the request's own deadline.
        let state = state(Duration::ZERO);
        let request = request("document:1", "view", "user:alice");
        let answer = check(&state, &request, Consistency::Full);
        assert!(matches!(answer, Ok(None)), "{answer:?}");
    }

    #[test]
    fn errors_are_answered_inline_never_as_allowed() {
        let state = state(Duration::from_secs(10));
        let request = request("document:1", "edit", "user:alice");
        let answer = check(&state, &request, Consistency::Full);
        assert!(
            matches!(answer, Err(EngineError::InvalidInput { .. })),
            "{answer:?}"
        );
    }
}
