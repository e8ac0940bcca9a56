#!/usr/bin/env python3
"""Cross-checks a running arbiter on the issue-14 dataset against a naive evaluator
(docs/BENCHMARKS.md, "One node at 1M and 10M"): reads the dataset's relationships.txt,
evaluates `document:D#view@user:U` by hand (view = viewer | owner; a viewer is a user, or
a member of a viewing group, members nesting through group#member), and compares with the
server's answers to the same checks through POST /v1/check/bulk.

usage: one_node_crosscheck.py DIR/relationships.txt [--server URL] [--checks N] [--seed S]

Half the checks are drawn from the tuples (a document's viewer, owner or a member of a
viewing group: mostly allowed), half at random (mostly denied). Exits 1 on any mismatch.
"""

import argparse
import json
import random
import sys
import urllib.request
from collections import defaultdict


def load(path):
    viewers, owners, doc_groups = defaultdict(set), defaultdict(set), defaultdict(set)
    members, subgroups = defaultdict(set), defaultdict(set)
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            resource, subject = line.split("@")
            obj, relation = resource.split("#")
            if obj.startswith("document:"):
                if relation == "owner":
                    owners[obj].add(subject)
                elif subject.endswith("#member"):
                    doc_groups[obj].add(subject[: -len("#member")])
                else:
                    viewers[obj].add(subject)
            elif subject.endswith("#member"):
                subgroups[obj].add(subject[: -len("#member")])
            else:
                members[obj].add(subject)
    return viewers, owners, doc_groups, members, subgroups


def is_member(group, user, members, subgroups, seen):
    if group in seen:
        return False
    seen.add(group)
    if user in members[group]:
        return True
    return any(is_member(sub, user, members, subgroups, seen) for sub in subgroups[group])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("relationships")
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    viewers, owners, doc_groups, members, subgroups = load(args.relationships)
    rng = random.Random(args.seed)
    docs = sorted(set(viewers) | set(owners) | set(doc_groups))
    users = sorted({u for s in viewers.values() for u in s} | {u for s in members.values() for u in s})
    checks = []
    while len(checks) < args.checks:
        doc = rng.choice(docs)
        if len(checks) % 2 == 0:
            pool = list(viewers[doc] | owners[doc])
            for group in doc_groups[doc]:
                pool.extend(members[group])
            user = rng.choice(pool) if pool else rng.choice(users)
        else:
            user = rng.choice(users)
        checks.append((doc, user))

    def expected(doc, user):
        if user in viewers[doc] or user in owners[doc]:
            return True
        return any(is_member(g, user, members, subgroups, set()) for g in doc_groups[doc])

    mismatches, allowed = 0, 0
    for start in range(0, len(checks), 100):
        batch = checks[start : start + 100]
        body = json.dumps(
            {"items": [{"resource": d, "permission": "view", "subject": u} for d, u in batch]}
        ).encode()
        request = urllib.request.Request(
            args.server + "/v1/check/bulk", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request) as answer:
            results = json.load(answer)["results"]
        for (doc, user), result in zip(batch, results):
            want = expected(doc, user)
            got = result.get("allowed")
            allowed += bool(got)
            if got is not want:
                mismatches += 1
                if mismatches <= 10:
                    print("MISMATCH", doc, user, "naive", want, "arbiter", result)
    print(f"{len(checks)} checks, {allowed} allowed, {mismatches} mismatches")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
