//! The relationship methods of PermissionsService: ReadRelationships (streamed, with
//! cursors), WriteRelationships (with preconditions), DeleteRelationships (by filter, with
//! preconditions and a limit), ImportBulkRelationships and ExportBulkRelationships.
//!
//! Reads and exports stream at one snapshot: every cursor carries the revision of the
//! first page, and a resumed stream reads at exactly that revision.

use spicedb_rs_proto::authzed::api::v1 as pb;
use tokio_stream::StreamExt as _;
use tonic::codegen::BoxStream;
use tonic::{Response, Status, Streaming};

use super::convert::{self, filter, precondition, update};
use super::status::{engine_status, rejection_status};
use super::stream::{self, Page, blocking};
use super::zedtoken;
use crate::engine::{Consistency, DeleteOptions, DeleteRequest, ReadRequest};
use crate::model::{Relationship, RelationshipFilter};
use crate::server::AppState;
use crate::store::{Update, UpdateOp};

type Reply<T> = Result<Response<T>, Status>;

pub async fn read(
    state: &AppState,
    request: pb::ReadRelationshipsRequest,
) -> Reply<BoxStream<pb::ReadRelationshipsResponse>> {
    let filter = filter(request.relationship_filter.as_ref(), "relationship_filter")?;
    let (mode, after) = zedtoken::resume(
        request.consistency.as_ref(),
        request.optional_cursor.as_ref(),
    )?;
    let limit = page_limit(state, request.optional_limit)?;
    let fetch = pages(state, filter, mode, after, limit, |revision, page| {
        page.iter()
            .map(|rel| pb::ReadRelationshipsResponse {
                read_at: Some(zedtoken::encode(revision)),
                relationship: Some(convert::relationship_message(rel)),
                after_result_cursor: Some(zedtoken::encode_cursor(revision, &rel.to_string())),
            })
            .collect()
    });
    let fetch = with_page_size(fetch, state.config().max_page);
    Ok(Response::new(stream::paged(fetch).await?))
}

pub async fn export(
    state: &AppState,
    request: pb::ExportBulkRelationshipsRequest,
) -> Reply<BoxStream<pb::ExportBulkRelationshipsResponse>> {
    let filter = match request.optional_relationship_filter.as_ref() {
        Some(it) => filter(Some(it), "optional_relationship_filter")?,
        None => RelationshipFilter::default(),
    };
    let (mode, after) = zedtoken::resume(
        request.consistency.as_ref(),
        request.optional_cursor.as_ref(),
    )?;
    let page = match request.optional_limit {
        0 => state.config().max_page,
        limit => page_limit(state, limit)?,
    };
    // One message per page, until the end.
    let fetch = pages(
        state,
        filter,
        mode,
        after,
        usize::MAX,
        move |revision, rels| {
            let Some(last) = rels.last() else {
                return Vec::new();
            };
            vec![pb::ExportBulkRelationshipsResponse {
                after_result_cursor: Some(zedtoken::encode_cursor(revision, &last.to_string())),
                relationships: rels.iter().map(convert::relationship_message).collect(),
            }]
        },
    );
    let fetch = with_page_size(fetch, page);
    Ok(Response::new(stream::paged(fetch).await?))
}

pub async fn write(
    state: &AppState,
    request: pb::WriteRelationshipsRequest,
) -> Reply<pb::WriteRelationshipsResponse> {
    refuse_metadata(request.optional_transaction_metadata.as_ref())?;
    let max = state.config().max_batch;
    if request.updates.len() > max {
        return Err(Status::invalid_argument(format!(
            "invalid `updates`: update count of {} is greater than the maximum of {max}",
            request.updates.len()
        )));
    }
    if request.optional_preconditions.len() > max {
        return Err(Status::invalid_argument(format!(
            "invalid `optional_preconditions`: precondition count of {} is greater than the maximum of {max}",
            request.optional_preconditions.len()
        )));
    }
    let updates = request
        .updates
        .iter()
        .map(update)
        .collect::<Result<Vec<_>, _>>()?;
    let preconditions = request
        .optional_preconditions
        .iter()
        .map(precondition)
        .collect::<Result<Vec<_>, _>>()?;
    let engine = state.engine().clone();
    let revision = blocking(move || {
        engine
            .write(&updates, &preconditions)
            .map_err(engine_status)?
            .map_err(rejection_status)
    })
    .await?;
    Ok(Response::new(pb::WriteRelationshipsResponse {
        written_at: Some(zedtoken::encode(revision)),
    }))
}

/// Deletes by filter. Without preconditions or a limit this is the engine's delete; with
/// them, the matching relationships are read and deleted in one write carrying the
/// preconditions, so that the preconditions and the deletion commit together.
pub async fn delete(
    state: &AppState,
    request: pb::DeleteRelationshipsRequest,
) -> Reply<pb::DeleteRelationshipsResponse> {
    use pb::delete_relationships_response::DeletionProgress;
    refuse_metadata(request.optional_transaction_metadata.as_ref())?;
    if request.optional_cursor.is_some() {
        return Err(Status::invalid_argument(
            "invalid `optional_cursor`: delete cursors are not supported",
        ));
    }
    let filter = filter(request.relationship_filter.as_ref(), "relationship_filter")?;
    let preconditions = request
        .optional_preconditions
        .iter()
        .map(precondition)
        .collect::<Result<Vec<_>, _>>()?;
    let max = state.config().max_batch;
    let limit = request.optional_limit as usize;
    let allow_partial = request.optional_allow_partial_deletions;
    let engine = state.engine().clone();
    let (revision, deleted, progress) = blocking(move || {
        if preconditions.is_empty() && limit == 0 {
            let request = DeleteRequest {
                filter,
                options: DeleteOptions::default(),
            };
            let done = engine.delete(&request).map_err(engine_status)?;
            return Ok((done.revision, done.deleted, DeletionProgress::Complete));
        }
        let cap = if limit == 0 { max } else { limit.min(max) };
        let read = ReadRequest {
            filter,
            limit: cap + 1,
            cursor: None,
        };
        let page = engine
            .read(&read, Consistency::Full)
            .map_err(engine_status)?;
        let mut matching = page.relationships;
        let mut progress = DeletionProgress::Complete;
        if matching.len() > cap {
            if limit == 0 || limit > max {
                return Err(Status::invalid_argument(format!(
                    "invalid `relationship_filter`: more than {max} relationships match; a delete with preconditions or a limit removes at most {max}"
                )));
            }
            if !allow_partial {
                // SpiceDB answers INVALID_ARGUMENT here.
                return Err(Status::invalid_argument(format!(
                    "more than {limit} relationships match the filter and `optional_allow_partial_deletions` is false"
                )));
            }
            matching.truncate(cap);
            progress = DeletionProgress::Partial;
        }
        let updates: Vec<Update> = matching
            .into_iter()
            .map(|relationship| Update {
                op: UpdateOp::Delete,
                relationship,
            })
            .collect();
        let revision = engine
            .write(&updates, &preconditions)
            .map_err(engine_status)?
            .map_err(rejection_status)?;
        Ok((revision, updates.len(), progress))
    })
    .await?;
    Ok(Response::new(pb::DeleteRelationshipsResponse {
        deleted_at: Some(zedtoken::encode(revision)),
        deletion_progress: progress as i32,
        relationships_deleted_count: deleted as u64,
        after_result_cursor: None,
    }))
}

/// Loads every batch of the client stream. Each batch is validated in full and committed
/// with touch semantics (existing relationships are kept, as an idempotent import);
/// batches commit one after another, not as one transaction.
pub async fn import(
    state: &AppState,
    mut batches: Streaming<pb::ImportBulkRelationshipsRequest>,
) -> Reply<pb::ImportBulkRelationshipsResponse> {
    let mut loaded = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let relationships = batch
            .relationships
            .iter()
            .map(|it| convert::relationship(Some(it), "relationships"))
            .collect::<Result<Vec<Relationship>, _>>()?;
        let count = relationships.len() as u64;
        let engine = state.engine().clone();
        blocking(move || {
            engine
                .import(&mut relationships.into_iter())
                .map_err(engine_status)
        })
        .await?;
        loaded += count;
    }
    Ok(Response::new(pb::ImportBulkRelationshipsResponse {
        num_loaded: loaded,
    }))
}

/// A fetcher of filtered-read pages at one snapshot, at most `limit` relationships in all,
/// shaping each page into messages with `shape`.
fn pages<T>(
    state: &AppState,
    filter: RelationshipFilter,
    mode: Consistency,
    after: Option<String>,
    limit: usize,
    shape: impl Fn(crate::model::Revision, &[Relationship]) -> Vec<T> + Send + 'static,
) -> impl FnMut(usize) -> Result<Page<T>, Status> + Send + 'static {
    let engine = state.engine().clone();
    let mut mode = mode;
    let mut read = ReadRequest {
        filter,
        limit: 0,
        cursor: after,
    };
    let mut remaining = limit;
    move |page_size| {
        read.limit = remaining.min(page_size);
        let page = engine.read(&read, mode).map_err(engine_status)?;
        mode = Consistency::AtExactSnapshot {
            revision: page.revision,
        };
        remaining -= page.relationships.len().min(remaining);
        read.cursor = page.relationships.last().map(ToString::to_string);
        let more = page.cursor.is_some() && remaining > 0;
        Ok(Page {
            messages: shape(page.revision, &page.relationships),
            more,
        })
    }
}

fn with_page_size<T>(
    mut fetch: impl FnMut(usize) -> Result<Page<T>, Status> + Send + 'static,
    page_size: usize,
) -> impl FnMut() -> Result<Page<T>, Status> + Send + 'static {
    move || fetch(page_size)
}

/// The page size of a read: `optional_limit` bounds the whole stream (0 = unbounded),
/// and must not exceed the server's page maximum.
fn page_limit(state: &AppState, limit: u32) -> Result<usize, Status> {
    let max = state.config().max_page;
    match limit as usize {
        0 => Ok(usize::MAX),
        limit if limit > max => Err(Status::invalid_argument(format!(
            "invalid `optional_limit`: at most {max}, got {limit}"
        ))),
        limit => Ok(limit),
    }
}

/// Transaction metadata is not stored; a write carrying it is refused, not ignored.
fn refuse_metadata(metadata: Option<&prost_types::Struct>) -> Result<(), Status> {
    match metadata {
        Some(_) => Err(Status::invalid_argument(
            "invalid `optional_transaction_metadata`: transaction metadata is not supported",
        )),
        None => Ok(()),
    }
}
