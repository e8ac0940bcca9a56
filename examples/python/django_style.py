"""A Django-style service using SpiceDB's official Python client against arbiter.

The ticket: split *execute* from *edit* on ML models, list every model a user may
execute (`Model.objects.executable(user)`), test one (`model.is_executable(user)`), and
revoke an API key everywhere at once. Nothing here knows it talks to arbiter rather than
SpiceDB: only the address changes.

Run a server, then this script:

    arbiter serve --memory --token dev-token &
    python examples/python/django_style.py --address 127.0.0.1:8080 --token dev-token

(`pip install -r tests/python/requirements.txt` gives the pinned `authzed` client.)
"""

import argparse
from dataclasses import dataclass

from authzed.api.v1 import (
    CheckPermissionRequest,
    CheckPermissionResponse,
    Client,
    Consistency,
    DeleteRelationshipsRequest,
    LookupResourcesRequest,
    ObjectReference,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectFilter,
    SubjectReference,
    WriteRelationshipsRequest,
    WriteSchemaRequest,
)
from grpcutil import insecure_bearer_token_credentials

SCHEMA = """
definition user {}

/** An API key acts on behalf of its owner, within the projects it is scoped to. */
definition apikey {}

definition project {
    relation contributor: user | apikey
    relation guest: user | user:* | apikey
    permission execute = guest | contributor
    permission edit = contributor
}

definition model {
    relation project: project
    permission execute = project->execute
    permission edit = project->edit
}
"""

# The ZedToken of our last write: reads at least as fresh as it see our own writes.
LAST_WRITE = {"token": None}


def consistency():
    token = LAST_WRITE["token"]
    if token is None:
        return Consistency(fully_consistent=True)
    return Consistency(at_least_as_fresh=token)


def subject(kind, ident):
    return SubjectReference(object=ObjectReference(object_type=kind, object_id=ident))


def write(client, *relationships):
    updates = [
        RelationshipUpdate(operation=RelationshipUpdate.Operation.OPERATION_TOUCH, relationship=r)
        for r in relationships
    ]
    answer = client.WriteRelationships(WriteRelationshipsRequest(updates=updates))
    LAST_WRITE["token"] = answer.written_at


def relationship(resource_type, resource_id, relation, kind, ident):
    return Relationship(
        resource=ObjectReference(object_type=resource_type, object_id=resource_id),
        relation=relation,
        subject=subject(kind, ident),
    )


@dataclass
class User:
    """Stands for `django.contrib.auth` users (or API keys: `kind="apikey"`)."""

    username: str
    kind: str = "user"


class ModelManager:
    """`Model.objects`: the ORM manager, with an authorization-aware queryset."""

    def __init__(self, client, rows):
        self.client = client
        self.rows = rows  # stands for the database table: id -> Model

    def executable(self, user):
        """`Model.objects.executable(user)`: LookupResources feeding a queryset filter
        (`Model.objects.filter(pk__in=ids)` in Django)."""
        request = LookupResourcesRequest(
            consistency=consistency(),
            resource_object_type="model",
            permission="execute",
            subject=subject(user.kind, user.username),
        )
        ids = {item.resource_object_id for item in self.client.LookupResources(request)}
        return [row for pk, row in sorted(self.rows.items()) if pk in ids]


@dataclass
class Model:
    pk: str
    name: str
    client: Client

    def _check(self, permission, user):
        request = CheckPermissionRequest(
            consistency=consistency(),
            resource=ObjectReference(object_type="model", object_id=self.pk),
            permission=permission,
            subject=subject(user.kind, user.username),
        )
        answer = self.client.CheckPermission(request)
        # Only HAS_PERMISSION allows; NO and CONDITIONAL (missing caveat context) deny.
        return answer.permissionship == CheckPermissionResponse.PERMISSIONSHIP_HAS_PERMISSION

    def is_executable(self, user):
        """`model.is_executable(user)`: one CheckPermission."""
        return self._check("execute", user)

    def is_editable(self, user):
        return self._check("edit", user)


def revoke_api_key(client, key):
    """Key revocation: every relationship naming the key goes, in one DeleteRelationships
    per resource type the key can be granted on."""
    deleted = 0
    for resource_type in ("project",):
        answer = client.DeleteRelationships(
            DeleteRelationshipsRequest(
                relationship_filter=RelationshipFilter(
                    resource_type=resource_type,
                    optional_subject_filter=SubjectFilter(subject_type="apikey", optional_subject_id=key),
                )
            )
        )
        LAST_WRITE["token"] = answer.deleted_at
        deleted += answer.relationships_deleted_count
    return deleted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:8080")
    parser.add_argument("--token", default="dev-token")
    args = parser.parse_args()
    client = Client(args.address, insecure_bearer_token_credentials(args.token))

    client.WriteSchema(WriteSchemaRequest(schema=SCHEMA))
    write(
        client,
        relationship("project", "vision", "contributor", "user", "ada"),
        relationship("project", "vision", "guest", "user", "bob"),
        relationship("project", "public", "guest", "user", "*"),
        relationship("project", "vision", "guest", "apikey", "k1"),
        relationship("model", "resnet", "project", "project", "vision"),
        relationship("model", "bert", "project", "project", "public"),
        relationship("model", "secret", "project", "project", "internal"),
    )
    rows = {pk: Model(pk, pk.upper(), client) for pk in ("bert", "resnet", "secret")}
    objects = ModelManager(client, rows)
    ada, bob, eve, key = User("ada"), User("bob"), User("eve"), User("k1", kind="apikey")

    assert rows["resnet"].is_executable(bob) and not rows["resnet"].is_editable(bob)
    assert rows["resnet"].is_editable(ada)
    assert [m.pk for m in objects.executable(eve)] == ["bert"], "public implies guest"
    assert [m.pk for m in objects.executable(bob)] == ["bert", "resnet"]
    assert rows["resnet"].is_executable(key)

    removed = revoke_api_key(client, "k1")
    assert removed == 1 and not rows["resnet"].is_executable(key)
    for user in (ada, bob, eve, key):
        names = ", ".join(m.name for m in objects.executable(user)) or "nothing"
        print(f"{user.kind} {user.username} may execute: {names}")
    print("ok: every check and lookup answered as expected")


if __name__ == "__main__":
    main()
