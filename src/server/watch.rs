//! `GET /v1/watch?since=R`: the change feed as newline-delimited JSON, one line per
//! committed revision that changed relationships, oldest first, streamed as revisions
//! commit. A client resumes by passing the last revision it saw as `since`.
//!
//! Each round reads the change log after the last revision sent (on the blocking pool);
//! when it is empty the stream waits for the engine to publish a new head. It subscribes
//! before reading, so a revision published between the read and the wait still wakes it.
//! The stream ends when the client goes away or the server starts shutting down.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use super::AppState;
use super::dto::WatchEvent;
use super::error::ApiError;
use crate::model::Revision;

/// How many change sets one read of the change log fetches.
const BATCH: usize = 256;

/// The media type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

struct Feed {
    state: AppState,
    /// The last revision sent (or the starting point).
    last: Revision,
    pending: VecDeque<Bytes>,
    heads: watch::Receiver<Revision>,
    shutdown: watch::Receiver<bool>,
}

/// Starts the stream after `since` (the head when absent). A `since` in the future or
/// older than the retained history is refused before any byte is streamed.
pub async fn start(state: AppState, since: Option<u64>) -> Result<Response, ApiError> {
    let engine = state.engine();
    let head = engine.head();
    let last = since.map_or(head, Revision);
    if last > head {
        return Err(ApiError::bad_request(
            "since",
            format!(
                "revision {} is in the future: the newest revision is {head}",
                last.0
            ),
        ));
    }
    let heads = engine.subscribe();
    let shutdown = state.shutdown_signal();
    // Read the first batch now, so that an expired `since` is a 400 and not a cut stream.
    let first = read_batch(&state, last).await?;
    let mut feed = Feed {
        state,
        last,
        pending: VecDeque::new(),
        heads,
        shutdown,
    };
    feed.enqueue(first);
    let body = Body::from_stream(stream::unfold(feed, next_line));
    Ok(([(CONTENT_TYPE, NDJSON)], body).into_response())
}

impl Feed {
    fn enqueue(&mut self, batch: Vec<crate::store::ChangeSet>) {
        for change_set in batch {
            self.last = self.last.max(change_set.revision);
            let mut line = match serde_json::to_vec(&WatchEvent::from(&change_set)) {
                Ok(line) => line,
                Err(err) => {
                    tracing::error!(error = %err, "cannot encode a watch event");
                    continue;
                }
            };
            line.push(b'\n');
            self.pending.push_back(Bytes::from(line));
        }
    }
}

/// The next line of the stream, waiting for new revisions as needed; `None` ends it.
async fn next_line(mut feed: Feed) -> Option<(Result<Bytes, Infallible>, Feed)> {
    loop {
        if let Some(line) = feed.pending.pop_front() {
            return Some((Ok(line), feed));
        }
        if *feed.shutdown.borrow() {
            return None;
        }
        // Mark the current head seen before reading, so a later publish wakes us.
        let head = *feed.heads.borrow_and_update();
        if head > feed.last {
            // Only what this server's index has applied: a revision in the stream can be
            // read here at once (the store may already hold newer ones, from other servers).
            let batch = read_batch(&feed.state, feed.last).await.map(|mut it| {
                it.retain(|change_set| change_set.revision <= head);
                it
            });
            match batch {
                Ok(batch) if !batch.is_empty() => {
                    feed.enqueue(batch);
                    continue;
                }
                // Revisions without relationship changes (schema writes) have no entry.
                Ok(_) => feed.last = head,
                Err(err) => {
                    tracing::warn!(error = %err, "watch stream ended by a change-log error");
                    return None;
                }
            }
            continue;
        }
        tokio::select! {
            changed = feed.heads.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = feed.shutdown.changed() => return None,
        }
    }
}

async fn read_batch(
    state: &AppState,
    since: Revision,
) -> Result<Vec<crate::store::ChangeSet>, ApiError> {
    let engine = state.engine().clone();
    tokio::task::spawn_blocking(move || engine.changes_since(since, BATCH))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .map_err(ApiError::from)
}
