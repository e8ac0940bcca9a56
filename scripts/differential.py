#!/usr/bin/env python3
"""Seeded random differential tester: arbiter against a real SpiceDB.

For each seed it generates a small case (a schema of 2-4 definitions with caveats and
expiring relations, random relationships, checks and lookups), asks the SpiceDB peer
(`../shared/peers/spicedb/oracle.py`, run as a subprocess) and one running
`arbiter serve --memory` (over its HTTP JSON API) the same questions, and compares every
answer: allowed / denied / conditional / error. A mismatch is shrunk (queries,
relationships, definitions, relations, permissions, caveat use, context keys dropped
while the same mismatch persists) and printed as oracle-format JSON with both answers.

Standard library only. See docs/DIFFERENTIAL.md.

    python3 scripts/differential.py --seeds 200 --arbiter /work/target-diff/release/arbiter

Deliberate differences (DESIGN §3) the generator avoids:
  * checks and lookups never use a wildcard subject (`user:*`): SpiceDB refuses them,
    arbiter answers them (OpenFGA's reading);
  * the relationship data is acyclic (a subject set of the same type only points to a
    later id), so no cycle through an exclusion can arise (arbiter denies it, SpiceDB
    errors).
What cannot be compared: SpiceDB's oracle reports a conditional answer without its
missing parameters, so only the kind of answer is compared, not arbiter's
`missing_context`.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ORACLE = os.path.join(ROOT, "..", "shared", "peers", "spicedb", "oracle.py")
if not os.path.exists(DEFAULT_ORACLE):
    DEFAULT_ORACLE = "/work/shared/peers/spicedb/oracle.py"

PAST = "2020-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"
IDS = ["a", "b", "c"]
USERS = ["u1", "u2", "u3", "u4"]

# ---------------------------------------------------------------------------------------
# Caveat parameter types: a short prefix for parameter names (a name always has one type,
# so one request context can serve every caveat), random values, random boolean CEL.
# ---------------------------------------------------------------------------------------

ALL_TYPES = [
    "int", "bool", "string", "uint", "double", "list<int>", "list<string>", "map<int>",
    "timestamp", "duration", "ipaddress",
]
PREFIX = {
    "int": "i", "bool": "b", "string": "s", "uint": "n", "double": "d", "list<int>": "li",
    "list<string>": "ls", "map<int>": "mi", "timestamp": "ts", "duration": "du",
    "ipaddress": "ip",
}
STRINGS = ["a", "b", "ab", "ba", ""]
TIMESTAMPS = ["2020-01-01T00:00:00Z", "2035-06-01T12:00:00Z", "2030-01-01T00:00:00Z"]
DURATIONS = ["10m", "1h", "90m", "2h30m", "0s"]
IPS = ["10.1.2.3", "192.168.0.1", "::1", "10.200.0.9"]
CIDRS = ["10.0.0.0/8", "192.168.0.0/16", "::1/128", "10.1.0.0/16"]


def rand_value(rng: random.Random, ty: str):
    if ty == "int":
        return rng.randint(-2, 5)
    if ty == "uint":
        return rng.randint(0, 5)
    if ty == "double":
        return rng.choice([0.5, 1.5, 2.0, 3.25, -1.0])
    if ty == "bool":
        return rng.random() < 0.5
    if ty == "string":
        return rng.choice(STRINGS)
    if ty == "list<int>":
        return rng.sample([1, 2, 3, 4], rng.randint(0, 3))
    if ty == "list<string>":
        return rng.sample(["a", "b", "c"], rng.randint(0, 3))
    if ty == "map<int>":
        return {k: rng.randint(0, 4) for k in rng.sample(["k", "j"], rng.randint(0, 2))}
    if ty == "timestamp":
        return rng.choice(TIMESTAMPS)
    if ty == "duration":
        return rng.choice(DURATIONS)
    if ty == "ipaddress":
        return rng.choice(IPS)
    raise ValueError(ty)


def cel_atom(rng: random.Random, params: list[tuple[str, str]]) -> str:
    """One boolean CEL expression over one or two parameters."""
    name, ty = rng.choice(params)
    same = [p for p, t in params if t == ty and p != name]
    other = rng.choice(same) if same and rng.random() < 0.3 else None
    cmp = rng.choice(["==", "!=", "<", "<=", ">", ">="])
    if ty == "int":
        return rng.choice([
            f"{name} {cmp} {other or rng.randint(-1, 4)}",
            f"{name} in [{rng.randint(0, 2)}, {rng.randint(2, 4)}]",
            f"{name} + {rng.randint(1, 3)} {cmp} {rng.randint(0, 6)}",
        ])
    if ty == "uint":
        # SpiceDB types a `uint` parameter as CEL `int`: `n1 < 2u` is refused there.
        return f"{name} {cmp} {other or rng.randint(0, 4)}"
    if ty == "double":
        return f"{name} {cmp} {other or rng.choice(['1.5', '2.0', '0.25'])}"
    if ty == "bool":
        return rng.choice([name, f"!{name}", f"{name} == {other or rng.choice(['true', 'false'])}"])
    if ty == "string":
        lit = json.dumps(rng.choice(STRINGS))
        return rng.choice([
            f"{name} {rng.choice(['==', '!='])} {other or lit}",
            f'{name} in ["a", "ab"]',
            f"{name}.startsWith({json.dumps(rng.choice(['a', 'b']))})",
            f"{name}.contains({json.dumps(rng.choice(['a', 'b']))})",
            f"size({name}) {cmp} {rng.randint(0, 2)}",
        ])
    if ty == "list<int>":
        return rng.choice([
            f"{rng.randint(1, 4)} in {name}",
            f"size({name}) {cmp} {rng.randint(0, 3)}",
            f"{name}.exists(x, x > {rng.randint(1, 3)})",
            f"{name}.all(x, x < {rng.randint(2, 5)})",
        ])
    if ty == "list<string>":
        return rng.choice([f'"{rng.choice("abc")}" in {name}', f"size({name}) {cmp} 1"])
    if ty == "map<int>":
        key = rng.choice(["k", "j"])
        # The last one is an evaluation error when the key is absent (both sides error).
        return rng.choice([f'"{key}" in {name}', f'"{key}" in {name} && {name}["{key}"] > 1',
                           f'{name}["{key}"] == 2'])
    if ty == "timestamp":
        return f'{name} {cmp} {other or "timestamp(" + json.dumps(rng.choice(TIMESTAMPS)) + ")"}'
    if ty == "duration":
        return f'{name} {cmp} {other or "duration(" + json.dumps(rng.choice(DURATIONS)) + ")"}'
    if ty == "ipaddress":
        strs = [p for p, t in params if t == "string"]
        cidr = rng.choice(strs) if strs and rng.random() < 0.3 else json.dumps(rng.choice(CIDRS))
        return f"{name}.in_cidr({cidr})"
    raise ValueError(ty)


def cel_expr(rng: random.Random, params, depth: int = 0) -> str:
    r = rng.random()
    if depth >= 2 or r < 0.35:
        return cel_atom(rng, params)
    if r < 0.7:
        return f"{cel_expr(rng, params, depth + 1)} && {cel_expr(rng, params, depth + 1)}"
    if r < 0.9:
        return f"({cel_expr(rng, params, depth + 1)} || {cel_expr(rng, params, depth + 1)})"
    return f"!({cel_expr(rng, params, depth + 1)})"


# ---------------------------------------------------------------------------------------
# Schema: structured, so that the shrinker can drop pieces and render it again.
# A permission expression is ("ref", name) | ("arrow", tupleset, name, fn) |
# (op, left, right, parenthesised) with op in "+&-".
# ---------------------------------------------------------------------------------------


def render_expr(e) -> str:
    if e[0] == "ref":
        return e[1]
    if e[0] == "arrow":
        _, tupleset, target, fn = e
        return f"{tupleset}->{target}" if fn == "->" else f"{tupleset}.{fn}({target})"
    op, left, right, paren = e
    text = f"{render_expr(left)} {op} {render_expr(right)}"
    return f"({text})" if paren else text


def render_schema(case: dict) -> str:
    out = ["use expiration", ""]
    for cav in case["caveats"]:
        params = ", ".join(f"{n} {t}" for n, t in cav["params"])
        out += [f"caveat {cav['name']}({params}) {{", f"    {cav['expr']}", "}", ""]
    out += ["definition user {}", ""]
    for d in case["defs"]:
        out.append(f"definition {d['name']} {{")
        for rel in d["relations"]:
            out.append(f"    relation {rel['name']}: {' | '.join(rel['options'])}")
        for perm in d["perms"]:
            out.append(f"    permission {perm['name']} = {render_expr(perm['expr'])}")
        out += ["}", ""]
    return "\n".join(out)


def option_parts(option: str):
    """`res0#rel_a with cv_a and expiration` → ("res0", "rel_a", False, "cv_a", True)."""
    base, _, traits = option.partition(" with ")
    caveat, expiring = None, False
    for trait in [t.strip() for t in traits.split(" and ")] if traits else []:
        if trait == "expiration":
            expiring = True
        else:
            caveat = trait
    wildcard = base.endswith(":*")
    base = base[:-2] if wildcard else base
    typ, _, rel = base.partition("#")
    return typ, rel or None, wildcard, caveat, expiring


def with_traits(rng: random.Random, base: str, caveats: list[str], opts: set) -> list[str]:
    """`base` plus variants `with C`, `with expiration`, `with C and expiration`."""
    out = []
    if rng.random() < 0.6 or not caveats:
        out.append(base)
    for _ in range(rng.randint(0, 2)):
        cav = rng.choice(caveats) if caveats else None
        kind = rng.random()
        if cav and kind < 0.5:
            out.append(f"{base} with {cav}")
        elif kind < 0.75:
            out.append(f"{base} with expiration")
        elif cav:
            out.append(f"{base} with {cav} and expiration")
    if not out:
        out.append(f"{base} with {caveats[0]}" if caveats else base)
    uniq = []
    for o in out:
        if o not in opts and o not in uniq:
            uniq.append(o)
    return uniq


def gen_case(seed: int, types: list[str]) -> dict:
    rng = random.Random(seed)
    # Caveats.
    caveats = []
    for k in range(rng.randint(1, 3)):
        params = []
        for _ in range(rng.randint(1, 3)):
            ty = rng.choice(types)
            name = f"{PREFIX[ty]}{rng.randint(1, 2)}"
            if name not in [p for p, _ in params]:
                params.append((name, ty))
        expr = cel_expr(rng, params)
        for name, ty in params:  # SpiceDB refuses a caveat with an unused parameter
            if not re.search(rf"\b{name}\b", expr):
                op = rng.choice(["&&", "||"])
                expr = f"{expr} {op} {cel_atom(rng, [(name, ty)])}"
        caveats.append({"name": f"cv_{'abc'[k]}", "params": params, "expr": expr})
    cav_names = [c["name"] for c in caveats]

    defs = []
    n_defs = rng.randint(1, 3)  # besides `user`
    for i in range(n_defs):
        name = f"res{i}"
        relations, perms = [], []
        names_so_far = []
        for r in range(rng.randint(1, 3)):
            rel_name = f"rel_{'abcd'[r]}"
            opts: list[str] = []
            if i > 0 and rng.random() < 0.4:
                # A tupleset relation (for arrows): objects of an earlier definition.
                target = f"res{rng.randrange(i)}"
                opts += with_traits(rng, target, cav_names, set(opts))
            else:
                opts += with_traits(rng, "user", cav_names, set(opts))
                if rng.random() < 0.35:
                    opts += with_traits(rng, "user:*", cav_names, set(opts))
                if rng.random() < 0.45:
                    j = rng.randint(0, i)
                    pool = defs[j]["relations"] + defs[j]["perms"] if j < i else []
                    target_names = [x["name"] for x in pool] or (["rel_a"] if j == i else [])
                    if j == i or target_names:
                        t = rng.choice(target_names) if j < i else "rel_a"
                        opts += with_traits(rng, f"res{j}#{t}", cav_names, set(opts))
            relations.append({"name": rel_name, "options": opts})
            names_so_far.append(rel_name)
        d = {"name": name, "relations": relations, "perms": perms}
        for p in range(rng.randint(1, 3)):
            perms.append({"name": f"perm_{'abc'[p]}", "expr": gen_perm_expr(rng, d, defs)})
        defs.append(d)
    case = {"caveats": caveats, "defs": defs}
    drop_wildcard_subject_sets(case)
    case["relationships"] = gen_relationships(rng, case)
    case["checks"] = gen_checks(rng, case)
    case["lookups"] = gen_lookups(rng, case)
    return case


def drop_wildcard_subject_sets(case: dict) -> None:
    """SpiceDB refuses a subject set `T#r` whose relation `r` admits a wildcard, directly
    or through subject sets of relations ("wildcard relations cannot be transitively
    included"); arbiter accepts such a schema (tests/engine/wildcards.yaml relies on it).
    The generator drops such subject types, so the cases stay comparable (DIFFERENTIAL.md)."""
    rels = {(d["name"], r["name"]): r for d in case["defs"] for r in d["relations"]}
    while True:
        wild = set()
        changed = True
        while changed:
            changed = False
            for key, rel in rels.items():
                if key in wild:
                    continue
                for o in rel["options"]:
                    typ, subrel, wildcard, _, _ = option_parts(o)
                    if wildcard or (subrel and (typ, subrel) in wild):
                        wild.add(key)
                        changed = True
                        break
        dropped = False
        for rel in rels.values():
            keep = [o for o in rel["options"]
                    if not (option_parts(o)[1] and (option_parts(o)[0], option_parts(o)[1]) in wild)]
            if len(keep) != len(rel["options"]):
                rel["options"] = keep or ["user"]
                dropped = True
        if not dropped:
            return


def gen_perm_expr(rng: random.Random, d: dict, defs: list, depth: int = 0):
    refs = [("ref", r["name"]) for r in d["relations"]] + [("ref", p["name"]) for p in d["perms"]]
    for rel in d["relations"]:
        typ, subrel, wildcard, _, _ = option_parts(rel["options"][0])
        if typ.startswith("res") and subrel is None and not wildcard:
            target = next(x for x in defs if x["name"] == typ)
            for t in target["relations"] + target["perms"]:
                fn = rng.choice(["->", "->", "->", "any", "all"])
                refs.append(("arrow", rel["name"], t["name"], fn))
    if depth >= 2 or rng.random() < 0.4:
        return rng.choice(refs)
    op = rng.choice(["+", "+", "&", "-"])
    return (op, gen_perm_expr(rng, d, defs, depth + 1), gen_perm_expr(rng, d, defs, depth + 1),
            rng.random() < 0.6)


def caveat_by_name(case: dict, name: str) -> dict:
    return next(c for c in case["caveats"] if c["name"] == name)


def stored_context(rng: random.Random, cav: dict) -> dict:
    return {p: rand_value(rng, t) for p, t in cav["params"] if rng.random() < 0.4}


def rel_suffix(caveat, ctx, expiration) -> str:
    out = ""
    if caveat:
        out += f"[{caveat}:{json.dumps(ctx, separators=(',', ':'))}]" if ctx else f"[{caveat}]"
    if expiration:
        out += f"[expiration:{expiration}]"
    return out


def rel_key(rel: str) -> str:
    return rel.split("[", 1)[0]


def gen_relationships(rng: random.Random, case: dict) -> list[str]:
    out: dict[str, str] = {}
    for _ in range(rng.randint(6, 24)):
        di = rng.randrange(len(case["defs"]))
        d = case["defs"][di]
        rel = rng.choice(d["relations"])
        option = rng.choice(rel["options"])
        typ, subrel, wildcard, caveat, expiring = option_parts(option)
        ri = rng.randrange(len(IDS))
        if typ == "user":
            subject = "user:*" if wildcard else f"user:{rng.choice(USERS)}"
        else:
            tj = int(typ[3:])
            if tj == di:  # same type: only to a later id, so the data stays acyclic
                if ri == len(IDS) - 1:
                    continue
                sid = rng.choice(IDS[ri + 1:])
            else:
                sid = rng.choice(IDS)
            subject = f"{typ}:{sid}" + (f"#{subrel}" if subrel else "")
        ctx = stored_context(rng, caveat_by_name(case, caveat)) if caveat else None
        expiration = (PAST if rng.random() < 0.4 else FUTURE) if expiring else None
        text = f"{d['name']}:{IDS[ri]}#{rel['name']}@{subject}" + rel_suffix(caveat, ctx, expiration)
        out[rel_key(text)] = text  # one relationship per key (SpiceDB refuses duplicates)
    return list(out.values())


def all_params(case: dict) -> dict:
    params = {}
    for cav in case["caveats"]:
        for p, t in cav["params"]:
            params[p] = t
    return params


def request_context(rng: random.Random, case: dict):
    params = all_params(case)
    r = rng.random()
    if r < 0.25 or not params:
        return None
    if r < 0.6:
        ctx = {p: rand_value(rng, t) for p, t in params.items()}
    else:
        ctx = {p: rand_value(rng, t) for p, t in params.items() if rng.random() < 0.5}
    if rng.random() < 0.1:
        ctx["zz_unused"] = 1  # a key that is no parameter: ignored by both
    if ctx and rng.random() < 0.04:
        # A value of the wrong type: an error wherever the caveat is evaluated.
        p = rng.choice(sorted(ctx))
        ctx[p] = {"wrong": True} if not isinstance(ctx[p], dict) else "wrong"
    return ctx


def gen_subject(rng: random.Random, case: dict) -> str:
    if rng.random() < 0.1:
        d = rng.choice(case["defs"])
        rel = rng.choice(d["relations"] + d["perms"])
        return f"{d['name']}:{rng.choice(IDS)}#{rel['name']}"
    return f"user:{rng.choice(USERS)}"


def gen_checks(rng: random.Random, case: dict) -> list[dict]:
    out = []
    for _ in range(rng.randint(8, 16)):
        d = rng.choice(case["defs"])
        names = [x["name"] for x in d["relations"] + d["perms"]]
        perm = rng.choice([p["name"] for p in d["perms"]] * 2 + names)
        check = {"resource": f"{d['name']}:{rng.choice(IDS)}", "permission": perm,
                 "subject": gen_subject(rng, case)}
        ctx = request_context(rng, case)
        if ctx is not None:
            check["context"] = ctx
        out.append(check)
    return out


def gen_lookups(rng: random.Random, case: dict) -> list[dict]:
    out = []
    for _ in range(rng.randint(2, 4)):
        d = rng.choice(case["defs"])
        perm = rng.choice([x["name"] for x in d["perms"] + d["relations"]])
        q = {"resource_type": d["name"], "permission": perm, "subject": f"user:{rng.choice(USERS)}"}
        ctx = request_context(rng, case)
        if ctx is not None:
            q["context"] = ctx
        out.append(q)
    return out


def oracle_spec(case: dict) -> dict:
    return {"schema": render_schema(case), "relationships": case["relationships"],
            "checks": case["checks"], "lookups": case["lookups"]}


# ---------------------------------------------------------------------------------------
# The two sides.
# ---------------------------------------------------------------------------------------


class Oracle:
    def __init__(self, path: str):
        self.path = path

    def run(self, spec: dict) -> dict:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
            name = f.name
        try:
            proc = subprocess.run([sys.executable, self.path, name, "--conditional"],
                                  capture_output=True, text=True, timeout=300)
        finally:
            os.unlink(name)
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"oracle failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
        checks = [norm_oracle_check(v) for v in out["checks"]]
        lookups = [norm_oracle_lookup(v) for v in out["lookups"]]
        return {"checks": checks, "lookups": lookups, "error": out.get("error")}


def norm_oracle_check(v):
    if v is True:
        return "allowed"
    if v is False:
        return "denied"
    if v == "conditional":
        return "conditional"
    return str(v)  # "error: ..."


def norm_oracle_lookup(v):
    """SpiceDB's LookupResources may stream one id twice, once conditional (through one
    path) and once definite (through another); the definite answer is the one a check
    gives, so an id listed as both counts as definite."""
    if isinstance(v, str):
        return v
    has = sorted(set(v["has"]))
    return {"has": has, "conditional": sorted(set(v["conditional"]) - set(has))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Arbiter:
    """One `arbiter serve --memory` for the whole run; each case deletes what the last wrote."""

    def __init__(self, binary: str):
        self.binary = binary
        self.proc = None
        self.types: list[str] = []
        self.start()

    def start(self):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--memory", "--addr", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                status, _ = self.call("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.log.seek(0)
        raise RuntimeError(f"arbiter did not start: {self.log.read()[-2000:]!r}")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def restart(self):
        self.stop()
        self.types = []
        self.start()

    def call(self, method: str, path: str, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = json.dumps(body) if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw) if raw else None
            except json.JSONDecodeError:
                return resp.status, {"error": {"code": "not_json", "message": raw[:200].decode()}}
        finally:
            conn.close()

    def post(self, path: str, body):
        return self.call("POST", path, body)

    def clear(self):
        for typ in self.types:
            status, ans = self.post("/v1/relationships/delete", {"filter": {"resource_type": typ}})
            if status != 200:
                self.restart()
                return
        self.types = []

    def run(self, case: dict) -> dict:
        """Answers an oracle-format case (schema text, relationships, checks, lookups)."""
        self.clear()
        nq = (len(case["checks"]), len(case["lookups"]))
        status, ans = self.post("/v1/schema", {"schema": case["schema"]})
        if status != 200:
            msg = f"error: schema: {err_text(ans)}"
            return {"checks": [msg] * nq[0], "lookups": [msg] * nq[1], "error": msg}
        self.types = sorted({r.split(":", 1)[0] for r in case["relationships"]})
        if case["relationships"]:
            updates = [{"op": "touch", "relationship": r} for r in case["relationships"]]
            status, ans = self.post("/v1/relationships/write", {"updates": updates})
            if status != 200:
                msg = f"error: relationships: {err_text(ans)}"
                return {"checks": [msg] * nq[0], "lookups": [msg] * nq[1], "error": msg}
        checks = []
        for c in case["checks"]:
            body = {"resource": c["resource"], "permission": c["permission"], "subject": c["subject"]}
            if c.get("context"):
                body["context"] = c["context"]
            status, ans = self.post("/v1/check", body)
            if status != 200:
                checks.append(f"error: {err_text(ans)}")
            else:
                p = ans.get("permissionship")
                checks.append({"has_permission": "allowed", "no_permission": "denied",
                               "conditional_permission": "conditional"}.get(p, f"odd: {ans}"))
                if p == "conditional_permission":
                    checks[-1] = ("conditional", ans.get("missing_context", []))
        lookups = []
        for q in case["lookups"]:
            lookups.append(self.lookup(q))
        return {"checks": checks, "lookups": lookups, "error": None}

    def lookup(self, q: dict):
        has, cond = [], []
        cursor = None
        for _ in range(100):
            body = {"resource_type": q["resource_type"], "permission": q["permission"],
                    "subject": q["subject"], "limit": 1000}
            if q.get("context"):
                body["context"] = q["context"]
            if cursor:
                body["cursor"] = cursor
            status, ans = self.post("/v1/lookup/resources", body)
            if status != 200:
                return f"error: {err_text(ans)}"
            has += ans["resources"]
            cond += [c["id"] for c in ans.get("conditional", [])]
            cursor = ans.get("cursor")
            if not cursor:
                break
        return {"has": sorted(has), "conditional": sorted(cond)}


def err_text(ans) -> str:
    if isinstance(ans, dict) and isinstance(ans.get("error"), dict):
        return f"{ans['error'].get('code')}: {ans['error'].get('message')}"
    return json.dumps(ans)


# ---------------------------------------------------------------------------------------
# Comparison.
# ---------------------------------------------------------------------------------------


def kind(v) -> str:
    if isinstance(v, tuple):
        return v[0]
    if isinstance(v, str) and v.startswith("error"):
        return "error"
    if isinstance(v, str):
        return v
    return "answer"


def sig_kind(v) -> str:
    """The kind of an answer for the shrinker: errors split by stage, so that shrinking a
    check-time error cannot drift into a schema that one side refuses."""
    k = kind(v)
    if k == "error":
        for stage in ("schema", "relationships"):
            if v.startswith(f"error: {stage}:"):
                return f"error ({stage})"
    return k


def same(a, s) -> bool:
    """arbiter's answer `a` against SpiceDB's `s`: any two errors match."""
    ka, ks = kind(a), kind(s)
    if ka == "error" or ks == "error":
        return ka == ks
    if ka == "answer":
        return a == s
    return ka == ks


def compare(case: dict, arb: dict, sdb: dict) -> list[dict]:
    out = []
    for i, (a, s) in enumerate(zip(arb["checks"], sdb["checks"])):
        if not same(a, s):
            out.append({"what": "check", "index": i, "query": case["checks"][i],
                        "arbiter": show(a), "spicedb": s, "sig": ("check", sig_kind(a), sig_kind(s))})
    for i, (a, s) in enumerate(zip(arb["lookups"], sdb["lookups"])):
        if not same(a, s):
            out.append({"what": "lookup", "index": i, "query": case["lookups"][i],
                        "arbiter": show(a), "spicedb": s, "sig": ("lookup", sig_kind(a), sig_kind(s))})
    return out


def show(v):
    if isinstance(v, tuple):
        return f"conditional (missing {', '.join(v[1])})"
    return v


# ---------------------------------------------------------------------------------------
# Shrinking: every candidate is a smaller case; keep it while the same kind of mismatch
# (same query kind, same pair of answer kinds) persists.
# ---------------------------------------------------------------------------------------


class Runner:
    def __init__(self, oracle: Oracle, arbiter: Arbiter):
        self.oracle, self.arbiter = oracle, arbiter
        self.runs = 0

    def mismatches(self, case: dict) -> list[dict]:
        self.runs += 1
        spec = oracle_spec(case)
        sdb = self.oracle.run(spec)
        arb = self.arbiter.run(spec)
        return compare(case, arb, sdb)


def candidates(case: dict):
    """Smaller variants of `case`, coarse first."""
    rels = case["relationships"]
    # Relationships: halves, then one at a time.
    n = len(rels)
    chunk = n // 2
    while chunk >= 1:
        for start in range(0, n, chunk):
            c = copy.deepcopy(case)
            c["relationships"] = rels[:start] + rels[start + chunk:]
            yield c
        chunk //= 2
    # Queries: only one left (the caller keeps one mismatching query first).
    # Definitions (the last ones first: later ones may refer to earlier ones).
    for di in reversed(range(len(case["defs"]))):
        c = copy.deepcopy(case)
        name = c["defs"][di]["name"]
        del c["defs"][di]
        c["relationships"] = [r for r in c["relationships"] if not r.startswith(name + ":")
                              and f"@{name}:" not in r]
        yield c
    # Permissions and relations.
    for di, d in enumerate(case["defs"]):
        for pi in range(len(d["perms"])):
            c = copy.deepcopy(case)
            del c["defs"][di]["perms"][pi]
            yield c
        for ri, rel in enumerate(d["relations"]):
            c = copy.deepcopy(case)
            del c["defs"][di]["relations"][ri]
            c["relationships"] = [r for r in c["relationships"]
                                  if not r.startswith(f"{d['name']}:") or f"#{rel['name']}@" not in r]
            yield c
            for oi in range(len(rel["options"])):
                if len(rel["options"]) > 1:
                    c = copy.deepcopy(case)
                    del c["defs"][di]["relations"][ri]["options"][oi]
                    yield c
        # Simplify permission expressions: replace an operator by one operand.
        for pi, perm in enumerate(d["perms"]):
            for sub in simpler(perm["expr"]):
                c = copy.deepcopy(case)
                c["defs"][di]["perms"][pi]["expr"] = sub
                yield c
    # Caveats: drop one (and its uses).
    for ci, cav in enumerate(case["caveats"]):
        c = copy.deepcopy(case)
        del c["caveats"][ci]
        yield c
    # Stored contexts and request contexts: drop keys.
    for ri, rel in enumerate(rels):
        if "[" in rel and ":{" in rel:
            c = copy.deepcopy(case)
            c["relationships"][ri] = strip_stored_context(rel)
            yield c
    for key in ("checks", "lookups"):
        for qi, q in enumerate(case[key]):
            for k in list((q.get("context") or {}).keys()):
                c = copy.deepcopy(case)
                del c[key][qi]["context"][k]
                if not c[key][qi]["context"]:
                    del c[key][qi]["context"]
                yield c


def simpler(e):
    if e[0] in ("+", "&", "-"):
        yield e[1]
        yield e[2]
        for s in simpler(e[1]):
            yield (e[0], s, e[2], e[3])
        for s in simpler(e[2]):
            yield (e[0], e[1], s, e[3])


def strip_stored_context(rel: str) -> str:
    head, _, rest = rel.partition("[")
    name, _, tail = rest.partition(":{")
    tail = tail[tail.index("}]") + 2:]
    return f"{head}[{name}]{tail}"


def shrink(runner: Runner, case: dict, mismatch: dict, budget: int) -> tuple[dict, dict]:
    sig = mismatch["sig"]
    c = copy.deepcopy(case)
    key = "checks" if mismatch["what"] == "check" else "lookups"
    other = "lookups" if key == "checks" else "checks"
    c[key] = [case[key][mismatch["index"]]]
    c[other] = []

    def still(candidate):
        for m in runner.mismatches(candidate):
            if m["sig"] == sig:
                return m
        return None

    found = still(c)
    if not found:
        return case, mismatch  # not reproducible alone: report the whole case
    best, best_m = c, found
    improved = True
    while improved and budget > 0:
        improved = False
        for cand in candidates(best):
            budget -= 1
            if budget <= 0:
                break
            m = still(cand)
            if m:
                best, best_m, improved = cand, m, True
                break
    return best, best_m


def lookup_id_answer(lookup, rid: str) -> str:
    if rid in lookup["has"]:
        return "allowed"
    return "conditional" if rid in lookup["conditional"] else "denied"


def probe(runner: Runner, case: dict, lookups: list[dict]) -> list[list[dict]]:
    """For lookup mismatches: what a check on each id the two sides disagree about
    answers, on both sides (with the lookup's context). One run for all of them."""
    c = copy.deepcopy(case)
    c["lookups"] = []
    c["checks"] = []
    owners = []
    for n, m in enumerate(lookups):
        a, s = m["arbiter"], m["spicedb"]
        if isinstance(a, str) or isinstance(s, str):
            continue
        q = m["query"]
        for rid in sorted({*a["has"], *a["conditional"], *s["has"], *s["conditional"]}):
            if lookup_id_answer(a, rid) == lookup_id_answer(s, rid):
                continue
            chk = {"resource": f"{q['resource_type']}:{rid}", "permission": q["permission"],
                   "subject": q["subject"]}
            if q.get("context"):
                chk["context"] = q["context"]
            c["checks"].append(chk)
            owners.append((n, rid))
    out: list[list[dict]] = [[] for _ in lookups]
    if not c["checks"]:
        return out
    spec = oracle_spec(c)
    sdb = runner.oracle.run(spec)
    arb = runner.arbiter.run(spec)
    for (n, rid), chk, x, y in zip(owners, c["checks"], arb["checks"], sdb["checks"]):
        out[n].append({"id": rid, "check": chk, "arbiter": show(x), "arbiter_kind": kind(x),
                       "spicedb": y,
                       "arbiter_lookup": lookup_id_answer(lookups[n]["arbiter"], rid),
                       "spicedb_lookup": lookup_id_answer(lookups[n]["spicedb"], rid)})
    return out


def spicedb_lookup_disagrees_with_its_check(probes: list[dict]) -> bool:
    """True when, on every id in dispute, SpiceDB's own check and arbiter's check both
    give arbiter's lookup answer: then SpiceDB's LookupResources disagrees with SpiceDB's
    CheckPermission, and arbiter follows the check (CAVEATS.md: a lookup lists what check
    answers for each object)."""
    return bool(probes) and all(
        p["spicedb"] == p["arbiter_lookup"] and p["arbiter_kind"] == p["arbiter_lookup"]
        for p in probes)


# ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=50, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=1, help="the first seed")
    ap.add_argument("--arbiter", default=os.path.join(ROOT, "target", "release", "arbiter"),
                    help="the arbiter binary")
    ap.add_argument("--oracle", default=DEFAULT_ORACLE, help="the SpiceDB peer's oracle.py")
    ap.add_argument("--keep-going", action="store_true", help="go on after a mismatch")
    ap.add_argument("--types", default=",".join(ALL_TYPES),
                    help="caveat parameter types to draw from (comma-separated)")
    ap.add_argument("--no-shrink", action="store_true", help="print mismatches unshrunk")
    ap.add_argument("--shrink-budget", type=int, default=150, help="most shrink steps per mismatch")
    ap.add_argument("--replay", metavar="FILE",
                    help="answer one oracle-format case on both sides, print both, and exit")
    ap.add_argument("--show", type=int, help="print the case of this seed as oracle JSON and exit")
    a = ap.parse_args()
    types = [t.strip() for t in a.types.split(",") if t.strip()]
    for t in types:
        if t not in PREFIX:
            ap.error(f"unknown type {t}")
    if a.show is not None:
        print(json.dumps(oracle_spec(gen_case(a.show, types)), indent=1))
        return 0

    runner = Runner(Oracle(a.oracle), Arbiter(a.arbiter))
    if a.replay:
        try:
            spec = json.load(open(a.replay))
            sdb = runner.oracle.run(spec)
            arb = runner.arbiter.run(spec)
        finally:
            runner.arbiter.stop()
        bad = 0
        for what in ("checks", "lookups"):
            for q, x, y in zip(spec.get(what, []), arb[what], sdb[what]):
                ok = same(x, y)
                bad += not ok
                print(f"{'ok ' if ok else 'MISMATCH'} {json.dumps(q)}\n    arbiter {show(x)}\n    spicedb {y}")
        return 1 if bad else 0
    stats = {"cases": 0, "checks": 0, "lookups": 0, "mismatches": 0, "both_error_cases": 0,
             "spicedb_lookup_vs_check": 0,
             "answers": {}}
    failed_seeds = []
    t0 = time.time()
    try:
        for seed in range(a.start, a.start + a.seeds):
            case = gen_case(seed, types)
            spec = oracle_spec(case)
            sdb = runner.oracle.run(spec)
            arb = runner.arbiter.run(spec)
            stats["cases"] += 1
            stats["checks"] += len(case["checks"])
            stats["lookups"] += len(case["lookups"])
            if sdb.get("error") and arb.get("error"):
                stats["both_error_cases"] += 1
            for v in sdb["checks"]:
                stats["answers"][kind(v)] = stats["answers"].get(kind(v), 0) + 1
            found = compare(case, arb, sdb)
            lookups = [m for m in found if m["what"] == "lookup"]
            if lookups:
                for m, probes in zip(lookups, probe(runner, case, lookups)):
                    if spicedb_lookup_disagrees_with_its_check(probes):
                        found.remove(m)
                        stats["spicedb_lookup_vs_check"] += 1
                        print(f"seed {seed}: SpiceDB's lookup disagrees with its own checks "
                              f"(arbiter follows the checks): {m['query']}: "
                              + "; ".join(f"{p['id']}: lookup {p['spicedb_lookup']}, check "
                                          f"{p['spicedb']}" for p in probes), flush=True)
            if not found:
                continue
            stats["mismatches"] += len(found)
            failed_seeds.append(seed)
            print(f"seed {seed}: {len(found)} mismatch(es)", flush=True)
            first = found[0]
            small, m = (case, first) if a.no_shrink else shrink(runner, case, first, a.shrink_budget)
            spec = oracle_spec(small)
            report = {"seed": seed, "case": spec, "arbiter": m["arbiter"],
                      "spicedb": m["spicedb"], "query": m["query"]}
            if m["what"] == "lookup":
                report["checks_of_the_ids"] = probe(runner, small, [m])[0]
            print(json.dumps(report, indent=1), flush=True)
            for other in found[1:]:
                print(f"  also {other['what']} {other['query']}: arbiter {other['arbiter']}, "
                      f"spicedb {other['spicedb']}", flush=True)
            if not a.keep_going:
                break
    finally:
        runner.arbiter.stop()
    dt = time.time() - t0
    print(f"seeds {a.start}..{a.start + stats['cases'] - 1}: {stats['cases']} cases, "
          f"{stats['checks']} checks, {stats['lookups']} lookups compared; "
          f"spicedb check answers {stats['answers']}; cases where both sides refused the "
          f"schema or data: {stats['both_error_cases']}; SpiceDB lookups that disagree with "
          f"SpiceDB's checks (not counted): {stats['spicedb_lookup_vs_check']}; mismatches {stats['mismatches']} "
          f"in seeds {failed_seeds}; {runner.runs} extra shrink runs; {dt:.0f} s", flush=True)
    return 1 if stats["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
