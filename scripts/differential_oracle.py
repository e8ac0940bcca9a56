#!/usr/bin/env python3
"""SpiceDB's answers for one differential case: checks, lookup resources and lookup
subjects, all against one fresh in-memory SpiceDB.

The SpiceDB peer's `oracle.py` answers checks and lookup resources only. This script
speaks to the same embedded SpiceDB through the peer's helper library (`sdbpeer.py`,
imported from the peer directory, not copied) and adds LookupSubjects. It is what
`scripts/differential.py` runs; it can also be run by hand:

    python3 scripts/differential_oracle.py case.json [--peer DIR]

Input: the oracle format (`{"schema", "relationships", "checks", "lookups"}`) plus
`"lookup_subjects": [{"resource": "doc:1", "permission": "view", "subject_type": "user",
"subject_relation": "member" (optional), "context": {...} (optional)}, ...]`.

Output (stdout, JSON):
  {"checks": [true | false | "conditional" | "error: ...", ...],
   "lookups": [{"has": [ids], "conditional": [ids]} | "error: ...", ...],
   "lookup_subjects": [{"subjects": [{"id", "conditional", "missing", "excluded":
        [{"id", "conditional"}]}]} | "error: ...", ...]}
with `"error"` at the top (and every entry an error) when the schema or a relationship is
refused, exit status 1 then. Lookup subjects are reported as SpiceDB streams them: one
entry per response, `*` for a wildcard with the ids it excludes (each possibly
conditionally excluded), `missing` the caveat parameters a conditional entry lacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep the peer folder free of __pycache__

DEFAULT_PEER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "..", "shared", "peers", "spicedb")
if not os.path.exists(os.path.join(DEFAULT_PEER, "sdbpeer.py")):
    DEFAULT_PEER = "/work/shared/peers/spicedb"


def peer_dir(argv: list[str]) -> str:
    """`--peer DIR` before argparse runs: sdbpeer must be importable to re-exec early."""
    for i, arg in enumerate(argv):
        if arg == "--peer" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--peer="):
            return arg.split("=", 1)[1]
    return DEFAULT_PEER


sys.path.insert(0, os.path.abspath(peer_dir(sys.argv[1:])))
import sdbpeer  # noqa: E402

sdbpeer.ensure_venv()  # re-executes under the peer's venv when grpc/authzed are missing


def struct(context: dict):
    from google.protobuf import struct_pb2

    st = struct_pb2.Struct()
    st.update(context)
    return st


def lookup_subjects(db, q: dict, cons) -> dict:
    from authzed.api import v1
    from authzed.api.v1 import permission_service_pb2 as ps

    req = v1.LookupSubjectsRequest(
        consistency=cons,
        resource=sdbpeer.parse_object(q["resource"]),
        permission=q["permission"],
        subject_object_type=q["subject_type"],
        optional_subject_relation=q.get("subject_relation") or "",
    )
    if q.get("context"):
        req.context.CopyFrom(struct(q["context"]))
    conditional = ps.LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION

    def resolved(r) -> dict:
        return {"id": r.subject_object_id, "conditional": r.permissionship == conditional,
                "missing": sorted(r.partial_caveat_info.missing_required_context)}

    out = []
    for resp in db.grpc_permissions.LookupSubjects(req):
        entry = resolved(resp.subject)
        entry["excluded"] = [{"id": e["id"], "conditional": e["conditional"]}
                             for e in map(resolved, resp.excluded_subjects)]
        out.append(entry)
    return {"subjects": out}


def run(spec: dict) -> dict:
    cons = sdbpeer.consistency("full")
    checks = spec.get("checks") or []
    lookups = spec.get("lookups") or []
    subjects = spec.get("lookup_subjects") or []

    def refused(msg: str) -> dict:
        return {"error": msg, "checks": [msg] * len(checks), "lookups": [msg] * len(lookups),
                "lookup_subjects": [msg] * len(subjects)}

    with sdbpeer.SpiceDB() as db:
        try:
            db.write_schema(spec["schema"])
        except Exception as e:  # noqa: BLE001 - SpiceDB's refusal, reported as an answer
            return refused(f"error: schema: {e}")
        try:
            rels = [sdbpeer.parse_relationship(r) for r in spec.get("relationships") or []]
            db.write_relationships(rels)
        except Exception as e:  # noqa: BLE001
            return refused(f"error: relationships: {e}")
        out = {"checks": [], "lookups": [], "lookup_subjects": []}
        for c in checks:
            try:
                resp = db.check(sdbpeer.check_request(c, cons))
                out["checks"].append(sdbpeer.permissionship_value(resp.permissionship))
            except Exception as e:  # noqa: BLE001
                out["checks"].append(f"error: {sdbpeer.grpc_error_text(e)}")
        for q in lookups:
            try:
                has, cond = db.lookup_resources(q["resource_type"], q["permission"], q["subject"],
                                                cons, q.get("context"))
                out["lookups"].append({"has": has, "conditional": cond})
            except Exception as e:  # noqa: BLE001
                out["lookups"].append(f"error: {sdbpeer.grpc_error_text(e)}")
        for q in subjects:
            try:
                out["lookup_subjects"].append(lookup_subjects(db, q, cons))
            except Exception as e:  # noqa: BLE001
                out["lookup_subjects"].append(f"error: {sdbpeer.grpc_error_text(e)}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="case JSON file, or - for stdin")
    ap.add_argument("--peer", default=DEFAULT_PEER, help="the SpiceDB peer directory (sdbpeer.py)")
    ap.add_argument("--indent", type=int, default=None)
    a = ap.parse_args()
    spec = json.load(sys.stdin if a.input == "-" else open(a.input))
    res = run(spec)
    print(json.dumps(res, indent=a.indent))
    return 1 if "error" in res else 0


if __name__ == "__main__":
    sys.exit(main())
