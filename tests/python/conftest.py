"""Fixtures for the authzed-client suite: a real `arbiter serve` on a free port.

The binary comes from $ARBITER_BIN (tests/grpc_python.rs sets it to the freshly built
one). Each test module gets its own in-memory server, guarded by a bearer token, and a
SpiceDB client (PyPI `authzed`) pointed at it, exactly as an application would use it.
"""

import os
import subprocess

import grpc
import pytest
from authzed.api.v1 import Client, WriteSchemaRequest
from grpcutil import insecure_bearer_token_credentials

TOKEN = "pytest-secret"

SCHEMA = """
use expiration

caveat ip_allowlist(user_ip ipaddress, cidr string) {
    user_ip.in_cidr(cidr)
}

definition user {}

definition gateway {
    relation key: user with ip_allowlist
    relation pass: user with expiration
    permission call = key
    permission enter = pass
}

definition group {
    relation member: user | group#member
}

definition project {
    relation manager: user | group#member
    relation contributor: user | group#member
    relation guest: user | user:*
    permission manage_apikey = manager
    permission execute = guest | contributor
    permission edit = contributor
}

definition model {
    relation project: project
    relation banned: user
    permission execute = project->execute - banned
    permission edit = project->edit
}
"""


class Server:
    """A running `arbiter serve` process and its address."""

    def __init__(self, *extra):
        binary = os.environ.get("ARBITER_BIN")
        if not binary:
            raise RuntimeError("ARBITER_BIN is not set: run this suite through tests/grpc_python.rs")
        args = [binary, "serve", "--memory", "--addr", "127.0.0.1:0", "--token", TOKEN, *extra]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline().strip()
        prefix = "listening on http://"
        if not line.startswith(prefix):
            self.process.kill()
            raise RuntimeError(f"arbiter did not start: {line!r}")
        self.address = line[len(prefix):]

    def client(self, token=TOKEN):
        return Client(self.address, insecure_bearer_token_credentials(token))

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server():
    server = Server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    client = server.client()
    client.WriteSchema(WriteSchemaRequest(schema=SCHEMA))
    return client


@pytest.fixture
def raw_channel(server):
    """A plain channel with no credentials at all."""
    channel = grpc.insecure_channel(server.address)
    yield channel
    channel.close()
