//! WatchService: every committed relationship change after a ZedToken (or after the head
//! when none is given), one response per revision, as revisions commit.
//!
//! A client resumes by passing the `changes_through` token of the last response it saw.
//! The first batch is read before the response starts, so a token older than the
//! retained history is an error status, not a cut stream. The stream is not bound by
//! the HTTP request timeout; it ends when the client goes away or the server shuts down.

use spicedb_rs_proto::authzed::api::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::convert::{self, filter};
use super::generated::watch_service_server::WatchService;
use super::status::engine_status;
use super::stream::blocking;
use super::zedtoken;
use crate::model::{Relationship, RelationshipFilter, Revision};
use crate::server::AppState;
use crate::store::{ChangeOp, ChangeSet};

/// How many change sets one read of the change log fetches.
const BATCH: usize = 256;

/// The WatchService over the shared server state.
pub struct Watch {
    state: AppState,
}

impl Watch {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Which changes a client asked for: none of the filters set means every change.
struct Selection {
    object_types: Vec<String>,
    filters: Vec<RelationshipFilter>,
}

impl Selection {
    fn admits(&self, rel: &Relationship) -> bool {
        let by_type =
            self.object_types.is_empty() || self.object_types.contains(&rel.resource.object_type);
        let by_filter =
            self.filters.is_empty() || self.filters.iter().any(|filter| filter.matches(rel));
        by_type && by_filter
    }
}

#[tonic::async_trait]
impl WatchService for Watch {
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<BoxStream<pb::WatchResponse>>, Status> {
        let request = request.into_inner();
        for kind in &request.optional_update_kinds {
            if *kind != pb::WatchKind::Unspecified as i32
                && *kind != pb::WatchKind::IncludeRelationshipUpdates as i32
            {
                return Err(Status::invalid_argument(format!(
                    "invalid `optional_update_kinds`: kind `{kind}` is not supported; only relationship updates are"
                )));
            }
        }
        let object_types = request
            .optional_object_types
            .iter()
            .map(|it| convert::type_name(it, "optional_object_types"))
            .collect::<Result<Vec<_>, _>>()?;
        let filters = request
            .optional_relationship_filters
            .iter()
            .map(|it| filter(Some(it), "optional_relationship_filters"))
            .collect::<Result<Vec<_>, _>>()?;
        let engine = self.state.engine();
        let head = engine.head();
        let since = match &request.optional_start_cursor {
            Some(token) => zedtoken::decode(token)?,
            None => head,
        };
        if since > head {
            return Err(Status::invalid_argument(format!(
                "invalid `optional_start_cursor`: revision {since} is in the future; the newest is {head}"
            )));
        }
        // Subscribe before the first read, so a revision published in between wakes us.
        let heads = engine.subscribe();
        let first = read_batch(&self.state, since).await?;
        let (sender, receiver) = mpsc::channel(16);
        let feed = Feed {
            state: self.state.clone(),
            selection: Selection {
                object_types,
                filters,
            },
            last: since,
            heads,
            shutdown: self.state.shutdown_signal(),
            sender,
        };
        tokio::spawn(feed.run(first));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

struct Feed {
    state: AppState,
    selection: Selection,
    /// The last revision sent (or the starting point).
    last: Revision,
    heads: watch::Receiver<Revision>,
    shutdown: watch::Receiver<bool>,
    sender: mpsc::Sender<Result<pb::WatchResponse, Status>>,
}

impl Feed {
    async fn run(mut self, first: Vec<ChangeSet>) {
        let mut batch = first;
        loop {
            if !self.send(batch).await {
                return;
            }
            if *self.shutdown.borrow() {
                return;
            }
            // Mark the current head seen before reading, so a later publish wakes us.
            let head = *self.heads.borrow_and_update();
            if head > self.last {
                batch = match read_batch(&self.state, self.last).await {
                    Ok(batch) if batch.is_empty() => {
                        // Revisions without relationship changes (schema writes).
                        self.last = head;
                        Vec::new()
                    }
                    Ok(batch) => batch,
                    Err(status) => {
                        let _ = self.sender.send(Err(status)).await;
                        return;
                    }
                };
                continue;
            }
            batch = Vec::new();
            tokio::select! {
                changed = self.heads.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = self.shutdown.changed() => return,
                () = self.sender.closed() => return,
            }
        }
    }

    /// Sends the admitted changes of each change set; false when the client is gone.
    async fn send(&mut self, batch: Vec<ChangeSet>) -> bool {
        for change_set in batch {
            self.last = self.last.max(change_set.revision);
            let updates: Vec<pb::RelationshipUpdate> = change_set
                .changes
                .iter()
                .filter(|change| self.selection.admits(&change.relationship))
                .map(|change| pb::RelationshipUpdate {
                    operation: match change.op {
                        ChangeOp::Touch => pb::relationship_update::Operation::Touch as i32,
                        ChangeOp::Delete => pb::relationship_update::Operation::Delete as i32,
                    },
                    relationship: Some(convert::relationship_message(&change.relationship)),
                })
                .collect();
            if updates.is_empty() {
                continue;
            }
            let response = pb::WatchResponse {
                updates,
                changes_through: Some(zedtoken::encode(change_set.revision)),
                optional_transaction_metadata: None,
                schema_updated: false,
                is_checkpoint: false,
                full_revision_metadata: Vec::new(),
            };
            if self.sender.send(Ok(response)).await.is_err() {
                return false;
            }
        }
        true
    }
}

async fn read_batch(state: &AppState, since: Revision) -> Result<Vec<ChangeSet>, Status> {
    let engine = state.engine().clone();
    blocking(move || engine.changes_since(since, BATCH).map_err(engine_status)).await
}
