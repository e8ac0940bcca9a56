//! PermissionsService: CheckPermission, CheckBulkPermissions, ExpandPermissionTree,
//! LookupResources and LookupSubjects here; the relationship methods are delegated to
//! `relationships`. Each call translates its message, makes the engine call the JSON
//! handler makes, and shapes the answer with a ZedToken of the revision it was computed at.

use spicedb_rs_proto::authzed::api::v1 as pb;
use spicedb_rs_proto::google::rpc::Status as RpcStatus;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::CheckAnswer;

use super::convert::{self, object, permissionship, relation_name, subject};
use super::generated::permissions_service_server::PermissionsService;
use super::status::engine_status;
use super::stream::{self, Page, blocking};
use super::{relationships, zedtoken};
use crate::engine::{
    CheckParts, CheckRequest, Consistency, Decision, ExpandDepth, ExpandNode, ExpandRequest,
    ExpandTree, LookupResourcesRequest, LookupSubjectsRequest,
};
use crate::model::{ObjectRef, SubjectRef};
use crate::server::{AppState, inline};

/// The PermissionsService over the shared server state.
pub struct Permissions {
    state: AppState,
}

impl Permissions {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// CheckPermission: the answer of tonic's service method and of the lean route
/// (`unary`), so the two cannot drift apart.
pub(super) async fn check(
    state: &AppState,
    request: pb::CheckPermissionRequest,
) -> Result<pb::CheckPermissionResponse, Status> {
    if let Some(decision) = cached(state, &request) {
        return Ok(check_response(decision));
    }
    check_uncached(state, request).await
}

/// [`check`] without the cache probe, for a caller that has just made it.
pub(super) async fn check_uncached(
    state: &AppState,
    request: pb::CheckPermissionRequest,
) -> Result<pb::CheckPermissionResponse, Status> {
    refuse_tracing(request.with_tracing, "with_tracing")?;
    let check = CheckRequest {
        context: convert::context(request.context.as_ref(), "context")?,
        resource: object(request.resource.as_ref(), "resource")?,
        permission: relation_name(&request.permission, "permission")?,
        subject: subject(request.subject.as_ref(), "subject")?,
    };
    let mode = zedtoken::consistency(request.consistency.as_ref())?;
    // A check takes microseconds: it runs inline within a slice, as the JSON check does;
    // a longer walk goes to the blocking pool under the request's deadline.
    let decision = match inline::check(state, &check, mode).map_err(engine_status)? {
        Some(decision) => decision,
        None => {
            let engine = state.request_engine();
            blocking(move || engine.check(&check, mode).map_err(engine_status)).await?
        }
    };
    Ok(check_response(decision))
}

/// The check cache's answer to a call without context or tracing, looked up by its names
/// as sent, before they are validated and copied (`inline::cached`); `None` when there is
/// none, or when the call is not that simple: the full path then answers or refuses it.
fn cached(state: &AppState, request: &pb::CheckPermissionRequest) -> Option<Decision> {
    let (parts, mode) = plain_parts(request)?;
    inline::cached(state, &parts, mode)
}

/// The names and consistency of a call without context or tracing, as sent (what
/// `wire::check_parts` reads from the bytes without decoding them).
pub(super) fn plain_parts(
    request: &pb::CheckPermissionRequest,
) -> Option<(CheckParts<'_>, Consistency)> {
    if request.with_tracing || request.context.is_some() {
        return None;
    }
    let resource = request.resource.as_ref()?;
    let subject = request.subject.as_ref()?;
    let object = subject.object.as_ref()?;
    let mode = zedtoken::consistency(request.consistency.as_ref()).ok()?;
    let parts = CheckParts {
        resource_type: &resource.object_type,
        resource_id: &resource.object_id,
        permission: &request.permission,
        subject_type: &object.object_type,
        subject_id: &object.object_id,
        subject_relation: Some(subject.optional_relation.as_str()).filter(|it| !it.is_empty()),
    };
    Some((parts, mode))
}

/// The answer to one CheckPermission call.
pub(super) fn check_response(decision: Decision) -> pb::CheckPermissionResponse {
    let (permissionship, partial_caveat_info) = permissionship(&CheckAnswer {
        permissionship: decision.permissionship,
        missing_context: decision.missing_context,
    });
    pb::CheckPermissionResponse {
        checked_at: Some(zedtoken::encode(decision.revision)),
        permissionship,
        partial_caveat_info,
        debug_trace: None,
        optional_expires_at: None,
    }
}

#[tonic::async_trait]
impl PermissionsService for Permissions {
    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Reply<BoxStream<pb::ReadRelationshipsResponse>> {
        relationships::read(&self.state, request.into_inner()).await
    }

    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Reply<pb::WriteRelationshipsResponse> {
        relationships::write(&self.state, request.into_inner()).await
    }

    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Reply<pb::DeleteRelationshipsResponse> {
        relationships::delete(&self.state, request.into_inner()).await
    }

    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Reply<pb::CheckPermissionResponse> {
        check(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Reply<pb::CheckBulkPermissionsResponse> {
        let request = request.into_inner();
        refuse_tracing(request.with_tracing, "with_tracing")?;
        let max = self.state.config().max_batch;
        if request.items.len() > max {
            return Err(Status::invalid_argument(format!(
                "invalid `items`: at most {max} items per bulk check, got {}",
                request.items.len()
            )));
        }
        let checks = request
            .items
            .iter()
            .map(|item| {
                Ok(CheckRequest {
                    context: convert::context(item.context.as_ref(), "items")?,
                    resource: object(item.resource.as_ref(), "items")?,
                    permission: relation_name(&item.permission, "items")?,
                    subject: subject(item.subject.as_ref(), "items")?,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let mode = zedtoken::consistency(request.consistency.as_ref())?;
        let engine = self.state.engine().clone();
        let bulk =
            blocking(move || engine.check_bulk(&checks, mode).map_err(engine_status)).await?;
        let pairs = request
            .items
            .into_iter()
            .zip(bulk.results)
            .map(|(item, res)| pb::CheckBulkPermissionsPair {
                request: Some(item),
                response: Some(bulk_response(res)),
            })
            .collect();
        Ok(Response::new(pb::CheckBulkPermissionsResponse {
            checked_at: Some(zedtoken::encode(bulk.revision)),
            pairs,
        }))
    }

    async fn expand_permission_tree(
        &self,
        request: Request<pb::ExpandPermissionTreeRequest>,
    ) -> Reply<pb::ExpandPermissionTreeResponse> {
        let request = request.into_inner();
        let expand = ExpandRequest {
            resource: object(request.resource.as_ref(), "resource")?,
            permission: relation_name(&request.permission, "permission")?,
            depth: ExpandDepth::OneLevel,
        };
        let mode = zedtoken::consistency(request.consistency.as_ref())?;
        let engine = self.state.engine().clone();
        let expansion =
            blocking(move || engine.expand(&expand, mode).map_err(engine_status)).await?;
        Ok(Response::new(pb::ExpandPermissionTreeResponse {
            expanded_at: Some(zedtoken::encode(expansion.revision)),
            tree_root: Some(tree(&expansion.tree)?),
        }))
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Reply<BoxStream<pb::LookupResourcesResponse>> {
        let request = request.into_inner();
        refuse_tracing(request.with_debug, "with_debug")?;
        let mut lookup = LookupResourcesRequest {
            context: convert::context(request.context.as_ref(), "context")?,
            resource_type: convert::type_name(
                &request.resource_object_type,
                "resource_object_type",
            )?,
            permission: relation_name(&request.permission, "permission")?,
            subject: subject(request.subject.as_ref(), "subject")?,
            limit: 0,
            cursor: None,
        };
        let (mode, after) = zedtoken::resume(
            request.consistency.as_ref(),
            request.optional_cursor.as_ref(),
        )?;
        let max_page = self.state.config().max_page;
        // 0 = every result, as in SpiceDB.
        let mut remaining = match request.optional_limit {
            0 => usize::MAX,
            limit => limit as usize,
        };
        lookup.cursor = after;
        let engine = self.state.engine().clone();
        let mut mode = mode;
        let fetch = move || {
            lookup.limit = remaining.min(max_page);
            let page = engine
                .lookup_resources(&lookup, mode)
                .map_err(engine_status)?;
            // Later pages read the snapshot of the first.
            mode = crate::engine::Consistency::AtExactSnapshot {
                revision: page.revision,
            };
            let results = merged(page.resources, page.conditional);
            remaining -= results.len().min(remaining);
            // The engine's cursor after each result, so that a client may resume after any.
            let cursors = crate::engine::cursors_after(
                lookup.cursor.as_deref(),
                page.revision,
                results.iter().map(|(id, _)| id.as_str()),
            )
            .map_err(engine_status)?;
            lookup.cursor = cursors.last().cloned().or_else(|| page.cursor.clone());
            let more = page.cursor.is_some() && remaining > 0;
            let messages = results
                .into_iter()
                .zip(cursors)
                .map(|((id, missing), cursor)| {
                    let (permissionship, partial_caveat_info) =
                        convert::lookup_permissionship(missing.as_deref());
                    pb::LookupResourcesResponse {
                        looked_up_at: Some(zedtoken::encode(page.revision)),
                        after_result_cursor: Some(zedtoken::encode_cursor(page.revision, &cursor)),
                        resource_object_id: id,
                        permissionship,
                        partial_caveat_info,
                    }
                })
                .collect();
            Ok(Page { messages, more })
        };
        Ok(Response::new(stream::paged(fetch).await?))
    }

    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Reply<BoxStream<pb::LookupSubjectsResponse>> {
        use pb::lookup_subjects_request::WildcardOption;
        let request = request.into_inner();
        let context = convert::context(request.context.as_ref(), "context")?;
        if !request.optional_subject_relation.is_empty() {
            return Err(Status::invalid_argument(
                "invalid `optional_subject_relation`: subject relations are not supported in lookup subjects",
            ));
        }
        // SpiceDB (v1.54) answers a concrete limit UNIMPLEMENTED, with this message.
        if request.optional_concrete_limit != 0 {
            return Err(Status::unimplemented("concrete limit is not yet supported"));
        }
        // SpiceDB hands out no lookup subjects cursor either; it decodes one and then
        // answers every subject. A cursor that names no page is refused, not ignored.
        if request.optional_cursor.is_some() {
            return Err(Status::invalid_argument(
                "invalid `optional_cursor`: lookup subjects answers every subject in one stream and hands out no cursor",
            ));
        }
        let include_wildcards = match WildcardOption::try_from(request.wildcard_option) {
            Ok(WildcardOption::Unspecified | WildcardOption::IncludeWildcards) => true,
            Ok(WildcardOption::ExcludeWildcards) => false,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "invalid `wildcard_option`: `{}` is not a wildcard option",
                    request.wildcard_option
                )));
            }
        };
        let lookup = LookupSubjectsRequest {
            resource: object(request.resource.as_ref(), "resource")?,
            permission: relation_name(&request.permission, "permission")?,
            subject_type: convert::type_name(&request.subject_object_type, "subject_object_type")?,
            context,
            limit: 0,
            cursor: None,
        };
        let mode = zedtoken::consistency(request.consistency.as_ref())?;
        let engine = self.state.engine().clone();
        let answer =
            blocking(move || engine.lookup_subjects(&lookup, mode).map_err(engine_status)).await?;
        let token = zedtoken::encode(answer.revision);
        let resolved = |id: &str, missing: Option<&[String]>| {
            let (permissionship, partial_caveat_info) = convert::lookup_permissionship(missing);
            pb::ResolvedSubject {
                subject_object_id: id.to_string(),
                permissionship,
                partial_caveat_info,
            }
        };
        let results = merged(answer.subjects, answer.conditional);
        let messages = results
            .iter()
            .filter(|(id, _)| include_wildcards || id.as_str() != "*")
            .map(|(id, missing)| {
                let missing = missing.as_deref();
                let excluded = if id == "*" {
                    answer
                        .excluded
                        .iter()
                        .map(|it| resolved(it, None))
                        .collect()
                } else {
                    Vec::new()
                };
                let (permissionship, partial_caveat_info) = convert::lookup_permissionship(missing);
                #[expect(deprecated, reason = "old clients still read the deprecated fields")]
                pb::LookupSubjectsResponse {
                    looked_up_at: Some(token.clone()),
                    subject_object_id: id.clone(),
                    excluded_subject_ids: if id == "*" {
                        answer.excluded.clone()
                    } else {
                        Vec::new()
                    },
                    permissionship,
                    partial_caveat_info,
                    subject: Some(resolved(id, missing)),
                    excluded_subjects: excluded,
                    after_result_cursor: None,
                }
            })
            .collect();
        Ok(Response::new(stream::ready(messages)))
    }

    async fn import_bulk_relationships(
        &self,
        request: Request<Streaming<pb::ImportBulkRelationshipsRequest>>,
    ) -> Reply<pb::ImportBulkRelationshipsResponse> {
        relationships::import(&self.state, request.into_inner()).await
    }

    async fn export_bulk_relationships(
        &self,
        request: Request<pb::ExportBulkRelationshipsRequest>,
    ) -> Reply<BoxStream<pb::ExportBulkRelationshipsResponse>> {
        relationships::export(&self.state, request.into_inner()).await
    }
}

/// Debug traces are not produced; a request asking for one is refused, not ignored.
fn refuse_tracing(requested: bool, field: &str) -> Result<(), Status> {
    if requested {
        Err(Status::invalid_argument(format!(
            "invalid `{field}`: debug traces are not supported"
        )))
    } else {
        Ok(())
    }
}

/// One bulk item's answer: its permissionship, or its own error.
fn bulk_response(
    res: Result<CheckAnswer, crate::engine::EngineError>,
) -> pb::check_bulk_permissions_pair::Response {
    use pb::check_bulk_permissions_pair::Response as Item;
    match res {
        Ok(answer) => {
            let (permissionship, partial_caveat_info) = permissionship(&answer);
            Item::Item(pb::CheckBulkPermissionsResponseItem {
                permissionship,
                partial_caveat_info,
                debug_trace: None,
            })
        }
        Err(err) => {
            let status = engine_status(err);
            Item::Error(RpcStatus {
                code: status.code() as i32,
                message: status.message().to_string(),
                details: Vec::new(),
            })
        }
    }
}

/// SpiceDB's tree for an expansion: leaves are direct subjects; unions, intersections
/// and exclusions are intermediate nodes; an arrow is the union of what it reaches.
fn tree(node: &ExpandTree) -> Result<pb::PermissionRelationshipTree, Status> {
    use pb::algebraic_subject_set::Operation;
    use pb::permission_relationship_tree::TreeType;
    let intermediate = |operation: Operation, children: Vec<&ExpandTree>| {
        let children = children
            .into_iter()
            .map(tree)
            .collect::<Result<Vec<_>, Status>>()?;
        Ok::<_, Status>(TreeType::Intermediate(pb::AlgebraicSubjectSet {
            operation: operation as i32,
            children,
        }))
    };
    let tree_type = match &node.node {
        ExpandNode::Leaf { subjects } => TreeType::Leaf(pb::DirectSubjectSet {
            subjects: subjects
                .iter()
                .map(|text| parse_subject(text))
                .collect::<Result<_, _>>()?,
        }),
        ExpandNode::Union { children } => {
            intermediate(Operation::Union, children.iter().collect())?
        }
        ExpandNode::Intersection { children } => {
            intermediate(Operation::Intersection, children.iter().collect())?
        }
        ExpandNode::Exclusion { base, subtracted } => {
            intermediate(Operation::Exclusion, vec![base, subtracted])?
        }
        ExpandNode::Arrow { children, .. } => {
            intermediate(Operation::Union, children.iter().collect())?
        }
        ExpandNode::Nil => TreeType::Leaf(pb::DirectSubjectSet::default()),
        // A userset on another object, not followed (or expanded earlier in this tree): a
        // leaf naming that subject set.
        ExpandNode::Userset | ExpandNode::Repeated => TreeType::Leaf(pb::DirectSubjectSet {
            subjects: vec![parse_subject(&format!(
                "{}#{}",
                node.resource, node.relation
            ))?],
        }),
    };
    let resource: ObjectRef = node
        .resource
        .parse()
        .map_err(|err| super::status::internal(&err))?;
    Ok(pb::PermissionRelationshipTree {
        expanded_object: Some(convert::object_message(&resource)),
        expanded_relation: node.relation.clone(),
        tree_type: Some(tree_type),
    })
}

/// Definite and conditional lookup results in the engine's order: each id with `None`, or
/// with the caveat parameters it misses. Without conditional ids that is the definite ids'
/// order (walk order for lookup resources); with them, the engine's order is sorted by
/// byte order (the three-valued mode), which sorting both lists together gives back.
fn merged(
    definite: Vec<String>,
    conditional: Vec<crate::engine::ConditionalId>,
) -> Vec<(String, Option<Vec<String>>)> {
    if conditional.is_empty() {
        return definite.into_iter().map(|id| (id, None)).collect();
    }
    let mut res: Vec<(String, Option<Vec<String>>)> = definite
        .into_iter()
        .map(|id| (id, None))
        .chain(
            conditional
                .into_iter()
                .map(|it| (it.id, Some(it.missing_context))),
        )
        .collect();
    res.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    res
}

/// The subject of an expand leaf; a caveated or expiring one carries SpiceDB's suffixes
/// (`user:tom[has_tier]`), which `DirectSubjectSet` has no field for: they are dropped
/// here (no name or id contains `[`).
fn parse_subject(text: &str) -> Result<pb::SubjectReference, Status> {
    let text = text.split('[').next().unwrap_or(text);
    let subject: SubjectRef = text.parse().map_err(|err| super::status::internal(&err))?;
    Ok(convert::subject_message(&subject))
}
