"""Asks a server which gRPC status it answers for each common mistake.

Used to build the status table of docs/CLIENTS.md: run it once against arbiter and once
against a real SpiceDB, and compare.

    python status_probe.py --address 127.0.0.1:8080 --token T     # arbiter (or any SpiceDB)
    python status_probe.py --peer                                  # the SpiceDB peer harness

`--peer` starts the in-memory SpiceDB of ../shared/peers/spicedb (run its setup.sh first,
and run this with its venv, /tmp/peervenv/bin/python).
"""

import argparse
import os
import sys

import grpc
from authzed.api.v1 import (
    CheckPermissionRequest,
    Consistency,
    DeleteRelationshipsRequest,
    ObjectReference,
    Precondition,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectReference,
    WriteRelationshipsRequest,
    WriteSchemaRequest,
    ZedToken,
)
from authzed.api.v1.permission_service_pb2_grpc import PermissionsServiceStub
from authzed.api.v1.schema_service_pb2_grpc import SchemaServiceStub

SCHEMA = """
definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation viewer: user | group#member
    permission view = viewer
}
"""


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


def write(op, *texts, preconditions=()):
    return WriteRelationshipsRequest(
        updates=[RelationshipUpdate(operation=op, relationship=rel(t)) for t in texts],
        optional_preconditions=list(preconditions),
    )


def check(resource, permission, who, **extra):
    return CheckPermissionRequest(
        consistency=Consistency(fully_consistent=True),
        resource=obj(resource),
        permission=permission,
        subject=subj(who),
        **extra,
    )


CHECK = "PermissionsService/CheckPermission"
WRITE = "PermissionsService/WriteRelationships"
SCHEMA_WRITE = "SchemaService/WriteSchema"
DELETE = "PermissionsService/DeleteRelationships"
TOUCH = RelationshipUpdate.Operation.OPERATION_TOUCH
CREATE = RelationshipUpdate.Operation.OPERATION_CREATE


def cases():
    must_match = Precondition(
        operation=Precondition.Operation.OPERATION_MUST_MATCH,
        filter=RelationshipFilter(resource_type="document", optional_resource_id="absent"),
    )
    return [
        ("check: unknown definition", CHECK, check("nope:1", "view", "user:a")),
        ("check: unknown permission", CHECK, check("document:1", "nope", "user:a")),
        ("check: malformed resource id", CHECK, check("document:a b", "view", "user:a")),
        ("check: foreign zedtoken", CHECK, CheckPermissionRequest(
            consistency=Consistency(at_least_as_fresh=ZedToken(token="garbage")),
            resource=obj("document:1"), permission="view", subject=subj("user:a"))),
        ("check: 60 nested groups (depth limit 50)", CHECK, check("document:deep", "view", "user:z")),
        ("write: unknown relation", WRITE, write(TOUCH, "document:1#nope@user:a")),
        ("write: subject type not allowed", WRITE, write(TOUCH, "document:1#viewer@document:2")),
        ("write: create of an existing one", WRITE, write(CREATE, "document:1#viewer@user:a")),
        ("write: failed precondition", WRITE, write(TOUCH, "document:2#viewer@user:a", preconditions=[must_match])),
        ("write: too many updates (1001)", WRITE, write(TOUCH, *[f"document:t{i}#viewer@user:a" for i in range(1001)])),
        ("delete: more matches than optional_limit", DELETE, DeleteRelationshipsRequest(
            relationship_filter=RelationshipFilter(resource_type="group"), optional_limit=1)),
        ("schema: invalid text", SCHEMA_WRITE, WriteSchemaRequest(schema="definition {")),
        ("schema: would orphan relationships", SCHEMA_WRITE, WriteSchemaRequest(
            schema="definition user {}\ndefinition group {\n relation member: user | group#member\n}\n")),
    ]


class Remote:
    """A server over a gRPC channel (arbiter, or any SpiceDB): `call` answers a status name."""

    def __init__(self, address, token):
        channel = grpc.insecure_channel(address)
        self.stubs = {"PermissionsService": PermissionsServiceStub(channel), "SchemaService": SchemaServiceStub(channel)}
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def call(self, method, request):
        service, name = method.split("/")
        try:
            getattr(self.stubs[service], name)(request, metadata=self.metadata, timeout=30)
            return "OK", ""
        except grpc.RpcError as err:
            return err.code().name, err.details()


class Peer:
    """The embedded SpiceDB of the peer harness, called through its C ABI."""

    def __init__(self, db, sdbpeer):
        self.db = db
        self.sdbpeer = sdbpeer

    def call(self, method, request):
        try:
            self.db.lib.caller(method)(self.db.handle, request.SerializeToString())
            return "OK", ""
        except self.sdbpeer.SpiceDBCallError as err:
            text = str(err)
            # "rpc error: code = FailedPrecondition desc = ..."
            code = text.split("code = ", 1)[-1].split(" ", 1)[0]
            return code, text.split("desc = ", 1)[-1]


def run(target):
    target.call("SchemaService/WriteSchema", WriteSchemaRequest(schema=SCHEMA))
    target.call("PermissionsService/WriteRelationships", write(TOUCH, "document:1#viewer@user:a"))
    # A chain of 60 nested groups, for the depth limit.
    chain = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(60)]
    chain += ["document:deep#viewer@group:g0#member", "group:g60#member@user:z"]
    target.call("PermissionsService/WriteRelationships", write(TOUCH, *chain))
    for name, method, request in cases():
        code, details = target.call(method, request)
        print(f"{name}: {code}: {details}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address")
    parser.add_argument("--token")
    parser.add_argument("--peer", action="store_true")
    args = parser.parse_args()
    if args.peer:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../shared/peers/spicedb"))
        sys.path.insert(0, "/work/shared/peers/spicedb")
        import sdbpeer

        with sdbpeer.SpiceDB() as db:
            run(Peer(db, sdbpeer))
        return
    run(Remote(args.address, args.token))


if __name__ == "__main__":
    main()
