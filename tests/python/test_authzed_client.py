"""SpiceDB's own Python client (PyPI `authzed`) against a real `arbiter serve`.

Every method arbiter serves is driven here through the client exactly as an application
calls SpiceDB: checks, bulk checks, expand, lookups, reads, writes with preconditions,
deletes with limits and preconditions, bulk import and export, schema, watch, the error
codes SpiceDB uses for the same mistakes, and the bearer token.
"""

import queue
import threading
import time

import grpc
import pytest
from authzed.api.v1 import (
    CheckBulkPermissionsRequest,
    CheckBulkPermissionsRequestItem,
    CheckPermissionRequest,
    CheckPermissionResponse,
    Consistency,
    ContextualizedCaveat,
    DeleteRelationshipsRequest,
    DeleteRelationshipsResponse,
    ExpandPermissionTreeRequest,
    LookupResourcesRequest,
    LookupSubjectsRequest,
    ObjectReference,
    Precondition,
    ReadRelationshipsRequest,
    ReadSchemaRequest,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectFilter,
    SubjectReference,
    WatchRequest,
    WriteRelationshipsRequest,
    WriteSchemaRequest,
)
from authzed.api.v1.permission_service_pb2 import (
    LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
    LOOKUP_PERMISSIONSHIP_HAS_PERMISSION,
    ExportBulkRelationshipsRequest,
    ImportBulkRelationshipsRequest,
)
from authzed.api.v1.schema_service_pb2_grpc import SchemaServiceStub
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

FULL = Consistency(fully_consistent=True)
HAS = CheckPermissionResponse.PERMISSIONSHIP_HAS_PERMISSION
NO = CheckPermissionResponse.PERMISSIONSHIP_NO_PERMISSION
CONDITIONAL = CheckPermissionResponse.PERMISSIONSHIP_CONDITIONAL_PERMISSION
TIMEOUT = 20


def obj(text):
    object_type, object_id = text.split(":", 1)
    return ObjectReference(object_type=object_type, object_id=object_id)


def subj(text):
    ref, _, relation = text.partition("#")
    return SubjectReference(object=obj(ref), optional_relation=relation)


def rel(text):
    resource, rest = text.split("#", 1)
    relation, who = rest.split("@", 1)
    return Relationship(resource=obj(resource), relation=relation, subject=subj(who))


def touch(client, *texts, op=RelationshipUpdate.Operation.OPERATION_TOUCH, preconditions=()):
    updates = [RelationshipUpdate(operation=op, relationship=rel(t)) for t in texts]
    request = WriteRelationshipsRequest(updates=updates, optional_preconditions=list(preconditions))
    return client.WriteRelationships(request, timeout=TIMEOUT).written_at


def check(client, resource, permission, who, consistency=FULL):
    request = CheckPermissionRequest(
        consistency=consistency, resource=obj(resource), permission=permission, subject=subj(who)
    )
    return client.CheckPermission(request, timeout=TIMEOUT).permissionship


def code_of(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_schema_round_trips(client):
    answer = client.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT)
    assert "definition model" in answer.schema_text
    assert answer.read_at.token


def test_check_permission_follows_arrows_wildcards_and_exclusion(client):
    touch(
        client,
        "project:p1#contributor@group:ml#member",
        "group:ml#member@user:ann",
        "project:p2#guest@user:*",
        "model:m1#project@project:p1",
        "model:m2#project@project:p2",
        "model:m2#banned@user:bob",
    )
    cases = [
        ("model:m1", "execute", "user:ann", HAS),
        ("model:m1", "edit", "user:ann", HAS),
        ("model:m1", "execute", "user:bob", NO),
        ("model:m2", "execute", "user:ann", HAS),
        ("model:m2", "execute", "user:bob", NO),
        ("model:m2", "edit", "user:ann", NO),
    ]
    for resource, permission, who, expected in cases:
        assert check(client, resource, permission, who) == expected, (resource, permission, who)


def context_of(**values):
    context = Struct()
    context.update(values)
    return context


def test_caveated_check_is_conditional_until_the_context_decides(client):
    allowlist = ContextualizedCaveat(caveat_name="ip_allowlist", context=context_of(cidr="10.0.0.0/8"))
    update = RelationshipUpdate(
        operation=RelationshipUpdate.Operation.OPERATION_TOUCH,
        relationship=Relationship(
            resource=obj("gateway:g1"), relation="key", subject=subj("user:k1"), optional_caveat=allowlist
        ),
    )
    client.WriteRelationships(WriteRelationshipsRequest(updates=[update]), timeout=TIMEOUT)

    def ask(**context):
        request = CheckPermissionRequest(
            consistency=FULL,
            resource=obj("gateway:g1"),
            permission="call",
            subject=subj("user:k1"),
            context=context_of(**context) if context else None,
        )
        return client.CheckPermission(request, timeout=TIMEOUT)

    missing = ask()
    assert missing.permissionship == CONDITIONAL
    assert list(missing.partial_caveat_info.missing_required_context) == ["user_ip"]
    assert ask(user_ip="10.1.2.3").permissionship == HAS
    assert ask(user_ip="192.168.1.1").permissionship == NO

    lookup = LookupResourcesRequest(
        consistency=FULL, resource_object_type="gateway", permission="call", subject=subj("user:k1")
    )
    found = list(client.LookupResources(lookup, timeout=TIMEOUT))
    assert [(it.resource_object_id, it.permissionship) for it in found] == [
        ("g1", LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION)
    ]
    lookup.context.CopyFrom(context_of(user_ip="10.1.2.3"))
    found = list(client.LookupResources(lookup, timeout=TIMEOUT))
    assert [(it.resource_object_id, it.permissionship) for it in found] == [
        ("g1", LOOKUP_PERMISSIONSHIP_HAS_PERMISSION)
    ]

    read = ReadRelationshipsRequest(
        consistency=FULL, relationship_filter=RelationshipFilter(resource_type="gateway", optional_relation="key")
    )
    [stored] = list(client.ReadRelationships(read, timeout=TIMEOUT))
    assert stored.relationship.optional_caveat.caveat_name == "ip_allowlist"
    assert dict(stored.relationship.optional_caveat.context) == {"cidr": "10.0.0.0/8"}


def test_expired_relationships_are_invisible(client):
    def holder(who, seconds):
        expires = Timestamp()
        expires.FromSeconds(int(time.time()) + seconds)
        return RelationshipUpdate(
            operation=RelationshipUpdate.Operation.OPERATION_TOUCH,
            relationship=Relationship(
                resource=obj("gateway:g2"), relation="pass", subject=subj(who), optional_expires_at=expires
            ),
        )

    updates = [holder("user:late", -3600), holder("user:early", 3600)]
    client.WriteRelationships(WriteRelationshipsRequest(updates=updates), timeout=TIMEOUT)
    assert check(client, "gateway:g2", "enter", "user:early") == HAS
    assert check(client, "gateway:g2", "enter", "user:late") == NO
    read = ReadRelationshipsRequest(
        consistency=FULL, relationship_filter=RelationshipFilter(resource_type="gateway", optional_relation="pass")
    )
    stored = list(client.ReadRelationships(read, timeout=TIMEOUT))
    assert [it.relationship.subject.object.object_id for it in stored] == ["early"]
    assert stored[0].relationship.optional_expires_at.seconds > time.time()


def test_zedtokens_pin_snapshots(client):
    before = touch(client, "project:z#manager@user:zoe")
    after = touch(client, "project:z#manager@user:zed")
    at_before = Consistency(at_exact_snapshot=before)
    assert check(client, "project:z", "manage_apikey", "user:zed", at_before) == NO
    assert check(client, "project:z", "manage_apikey", "user:zed", Consistency(at_least_as_fresh=after)) == HAS
    assert check(client, "project:z", "manage_apikey", "user:zoe", Consistency(minimize_latency=True)) in (HAS, NO)


def test_check_bulk_permissions_answers_each_item(client):
    touch(client, "project:b1#manager@user:bea")
    items = [
        CheckBulkPermissionsRequestItem(resource=obj("project:b1"), permission="manage_apikey", subject=subj("user:bea")),
        CheckBulkPermissionsRequestItem(resource=obj("project:b1"), permission="manage_apikey", subject=subj("user:bob")),
        CheckBulkPermissionsRequestItem(resource=obj("project:b1"), permission="nope", subject=subj("user:bea")),
    ]
    answer = client.CheckBulkPermissions(CheckBulkPermissionsRequest(consistency=FULL, items=items), timeout=TIMEOUT)
    assert [pair.item.permissionship for pair in answer.pairs[:2]] == [HAS, NO]
    assert answer.pairs[2].error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert answer.pairs[0].request.subject.object.object_id == "bea"


def test_expand_permission_tree(client):
    touch(client, "project:e1#guest@user:eve", "project:e1#contributor@user:eli")
    answer = client.ExpandPermissionTree(
        ExpandPermissionTreeRequest(consistency=FULL, resource=obj("project:e1"), permission="execute"),
        timeout=TIMEOUT,
    )
    root = answer.tree_root
    assert root.expanded_object.object_id == "e1"
    assert root.WhichOneof("tree_type") == "intermediate"
    leaves = [s.object.object_id for child in root.intermediate.children for s in child.leaf.subjects]
    assert sorted(leaves) == ["eli", "eve"]


def test_lookup_resources_streams_with_cursors(client):
    touch(client, *[f"project:l{i}#manager@user:lou" for i in range(5)])
    found, cursor = [], None
    while True:
        request = LookupResourcesRequest(
            consistency=FULL,
            resource_object_type="project",
            permission="manage_apikey",
            subject=subj("user:lou"),
            optional_limit=2,
            optional_cursor=cursor,
        )
        page = list(client.LookupResources(request, timeout=TIMEOUT))
        found += [item.resource_object_id for item in page]
        if len(page) < 2:
            break
        cursor = page[-1].after_result_cursor
    # Walk order, not sorted: every id once.
    assert sorted(found) == [f"l{i}" for i in range(5)]


def test_lookup_subjects_reports_wildcards_and_exclusions(client):
    touch(client, "project:pub#guest@user:*", "model:mp#project@project:pub", "model:mp#banned@user:mal")
    request = LookupSubjectsRequest(
        consistency=FULL, resource=obj("model:mp"), permission="execute", subject_object_type="user"
    )
    answers = list(client.LookupSubjects(request, timeout=TIMEOUT))
    wildcard = [a for a in answers if a.subject.subject_object_id == "*"]
    assert len(wildcard) == 1
    assert [s.subject_object_id for s in wildcard[0].excluded_subjects] == ["mal"]


def test_read_relationships_streams_and_resumes(client):
    touch(client, *[f"project:r{i}#guest@user:ray" for i in range(5)])
    flt = RelationshipFilter(
        resource_type="project", optional_subject_filter=SubjectFilter(subject_type="user", optional_subject_id="ray")
    )
    first = list(client.ReadRelationships(ReadRelationshipsRequest(consistency=FULL, relationship_filter=flt, optional_limit=3), timeout=TIMEOUT))
    assert len(first) == 3
    rest = list(
        client.ReadRelationships(
            ReadRelationshipsRequest(relationship_filter=flt, optional_cursor=first[-1].after_result_cursor),
            timeout=TIMEOUT,
        )
    )
    ids = [r.relationship.resource.object_id for r in first + rest]
    assert ids == [f"r{i}" for i in range(5)]


def test_write_preconditions_and_create(client):
    must_match = Precondition(
        operation=Precondition.Operation.OPERATION_MUST_MATCH,
        filter=RelationshipFilter(resource_type="project", optional_resource_id="absent"),
    )
    assert code_of(lambda: touch(client, "project:w1#guest@user:wes", preconditions=[must_match])) == grpc.StatusCode.FAILED_PRECONDITION
    assert check(client, "project:w1", "execute", "user:wes") == NO
    create = RelationshipUpdate.Operation.OPERATION_CREATE
    touch(client, "project:w1#guest@user:wes", op=create)
    assert code_of(lambda: touch(client, "project:w1#guest@user:wes", op=create)) == grpc.StatusCode.ALREADY_EXISTS


def test_delete_relationships_with_limit_and_preconditions(client):
    touch(client, *[f"project:d{i}#manager@user:dan" for i in range(4)])
    flt = RelationshipFilter(
        resource_type="project", optional_subject_filter=SubjectFilter(subject_type="user", optional_subject_id="dan")
    )
    limited = DeleteRelationshipsRequest(relationship_filter=flt, optional_limit=1)
    assert code_of(lambda: client.DeleteRelationships(limited, timeout=TIMEOUT)) == grpc.StatusCode.INVALID_ARGUMENT
    partial = client.DeleteRelationships(
        DeleteRelationshipsRequest(relationship_filter=flt, optional_limit=1, optional_allow_partial_deletions=True),
        timeout=TIMEOUT,
    )
    assert partial.deletion_progress == DeleteRelationshipsResponse.DELETION_PROGRESS_PARTIAL
    assert partial.relationships_deleted_count == 1
    guarded = DeleteRelationshipsRequest(
        relationship_filter=flt,
        optional_preconditions=[Precondition(operation=Precondition.Operation.OPERATION_MUST_NOT_MATCH, filter=flt)],
    )
    assert code_of(lambda: client.DeleteRelationships(guarded, timeout=TIMEOUT)) == grpc.StatusCode.FAILED_PRECONDITION
    done = client.DeleteRelationships(DeleteRelationshipsRequest(relationship_filter=flt), timeout=TIMEOUT)
    assert done.relationships_deleted_count == 3


def test_import_and_export_bulk_relationships(client):
    batches = [
        ImportBulkRelationshipsRequest(relationships=[rel(f"project:i{i}#guest@user:ivy") for i in range(j, j + 3)])
        for j in (0, 3)
    ]
    assert client.ImportBulkRelationships(iter(batches), timeout=TIMEOUT).num_loaded == 6
    flt = RelationshipFilter(
        resource_type="project", optional_subject_filter=SubjectFilter(subject_type="user", optional_subject_id="ivy")
    )
    pages = list(
        client.ExportBulkRelationships(
            ExportBulkRelationshipsRequest(consistency=FULL, optional_limit=4, optional_relationship_filter=flt),
            timeout=TIMEOUT,
        )
    )
    exported = [r.resource.object_id for page in pages for r in page.relationships]
    assert exported == [f"i{i}" for i in range(6)]


def test_watch_resumes_from_a_zedtoken(client):
    start = touch(client, "project:wa#guest@user:wil")
    stream = client.Watch(WatchRequest(optional_start_cursor=start), timeout=TIMEOUT)
    got = queue.Queue()

    def consume():
        try:
            for response in stream:
                for update in response.updates:
                    got.put(update.relationship.resource.object_id)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    touch(client, "project:wb#guest@user:wil")
    assert got.get(timeout=TIMEOUT) == "wb"
    stream.cancel()
    reader.join(timeout=TIMEOUT)


ERROR_CASES = [
    ("unknown definition", lambda c: check(c, "nope:1", "view", "user:a"), grpc.StatusCode.FAILED_PRECONDITION),
    ("unknown permission", lambda c: check(c, "project:p1", "nope", "user:a"), grpc.StatusCode.FAILED_PRECONDITION),
    ("malformed id", lambda c: check(c, "project:a b", "execute", "user:a"), grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown relation on write", lambda c: touch(c, "project:p1#nope@user:a"), grpc.StatusCode.FAILED_PRECONDITION),
    ("subject type not allowed", lambda c: touch(c, "model:m1#banned@group:g#member"), grpc.StatusCode.INVALID_ARGUMENT),
    ("too many updates", lambda c: touch(c, *[f"project:t{i}#guest@user:a" for i in range(501)]), grpc.StatusCode.INVALID_ARGUMENT),
    (
        "orphaning schema",
        lambda c: c.WriteSchema(WriteSchemaRequest(schema="definition user {}"), timeout=TIMEOUT),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "invalid schema",
        lambda c: c.WriteSchema(WriteSchemaRequest(schema="definition {"), timeout=TIMEOUT),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


@pytest.mark.parametrize("name,call,expected", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_errors_use_spicedbs_status_codes(client, name, call, expected):
    assert code_of(lambda: call(client)) == expected, name


def test_no_token_is_unauthenticated(raw_channel):
    stub = SchemaServiceStub(raw_channel)
    assert code_of(lambda: stub.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_token_is_permission_denied(server):
    wrong = server.client(token="not-the-token")
    assert code_of(lambda: wrong.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT)) == grpc.StatusCode.PERMISSION_DENIED


def test_experimental_service_is_unimplemented(client):
    from authzed.api.v1.experimental_service_pb2 import ExperimentalCountRelationshipsRequest

    request = ExperimentalCountRelationshipsRequest(name="c")
    call = lambda: client.ExperimentalCountRelationships(request, timeout=TIMEOUT)  # noqa: E731
    assert code_of(call) == grpc.StatusCode.UNIMPLEMENTED
