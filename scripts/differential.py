#!/usr/bin/env python3
"""Seeded random differential tester: arbiter against a real SpiceDB.

For each seed it generates a small case (a schema with caveats and expiring relations,
random relationships, checks, lookup resources and lookup subjects), asks a fresh
in-memory SpiceDB (`scripts/differential_oracle.py`, a subprocess that imports the peer's
`../shared/peers/spicedb/sdbpeer.py`) and one running `arbiter serve --memory` (over its
HTTP JSON API) the same questions, and compares every answer: allowed / denied /
conditional / error for checks, definite and conditional ids for lookups, and what a
lookup subjects answer says of every id (wildcard and its exclusions included). A
mismatch is shrunk (queries, relationships, definitions, relations, permissions, caveat
use, context keys dropped while the same mismatch persists) and printed as oracle-format
JSON with both answers.

Two mixes: `default` (random definitions `res0..res2`, acyclic data) and `structure`
(nested groups and parent folders whose data has cycles; SpiceDB gets an acyclic
unrolling, scripts/differential_structure.py).

Standard library only. See docs/DIFFERENTIAL.md.

    python3 scripts/differential.py --seeds 200 --arbiter /work/target-diff/release/arbiter
    python3 scripts/differential.py --mix structure --seeds 400 --keep-going --arbiter ...

Deliberate differences (DESIGN §3) the generator avoids:
  * checks and lookups never use a wildcard subject (`user:*`): SpiceDB refuses them,
    arbiter answers them (OpenFGA's reading);
  * no cycle through an exclusion: the default mix's data is acyclic (a subject set of
    the same type only points to a later id); the structure mix's cycles never run
    through the subtracted side of an exclusion (arbiter denies such a cycle, SpiceDB
    errors).
What cannot be compared: SpiceDB's oracle reports a conditional check without its
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
DEFAULT_PEER = os.path.join(ROOT, "..", "shared", "peers", "spicedb")
if not os.path.exists(os.path.join(DEFAULT_PEER, "sdbpeer.py")):
    DEFAULT_PEER = "/work/shared/peers/spicedb"

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

# `--edges`: values at the limits of CEL's arithmetic, drawn one time in four, and atoms
# that do arithmetic on them (unary minus, sums, differences). Off by default, so that
# the seeds of the runs in docs/DIFFERENTIAL.md draw the same cases.
EDGES = False
INT_EDGES = [-(2**63), 2**63 - 1, -(2**63) + 1]
DURATION_EDGES = ["2562047h", "2562048h", "-2562047h", "2000000h", "1500000h"]
TIMESTAMP_EDGES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1700-01-01T00:00:00Z"]
IPS = ["10.1.2.3", "192.168.0.1", "::1", "10.200.0.9"]
CIDRS = ["10.0.0.0/8", "192.168.0.0/16", "::1/128", "10.1.0.0/16"]


def rand_value(rng: random.Random, ty: str):
    if EDGES and ty in ("int", "duration", "timestamp") and rng.random() < 0.25:
        return rng.choice({"int": INT_EDGES, "duration": DURATION_EDGES,
                           "timestamp": TIMESTAMP_EDGES}[ty])
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
    if EDGES and ty in ("int", "duration", "timestamp") and rng.random() < 0.5:
        return edge_atom(rng, name, ty, other, cmp)
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


def edge_atom(rng: random.Random, name: str, ty: str, other, cmp: str) -> str:
    """Arithmetic that can leave CEL's ranges (`--edges`)."""
    if ty == "int":
        return rng.choice([f"-{name} {cmp} 0", f"{name} - {other or 1} {cmp} 0",
                           f"{name} + {other or name} {cmp} 0", f"-(-{name}) == {name}"])
    if ty == "duration":
        lit = "duration(" + json.dumps(rng.choice(DURATION_EDGES)) + ")"
        return rng.choice([f"{name} + {other or name} {cmp} {name}", f"{name} - {lit} {cmp} {name}",
                           f"{lit} {cmp} {name}"])
    lit = "duration(" + json.dumps(rng.choice(DURATIONS + DURATION_EDGES)) + ")"
    return rng.choice([f"{name} + {lit} {cmp} {name}", f"{name} - {lit} {cmp} {name}",
                       f"{name} - {other or name} {cmp} {lit}"])


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


def gen_caveats(rng: random.Random, types: list[str]) -> list[dict]:
    """1-3 caveats of 1-3 parameters each; every parameter is used."""
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
    return caveats


def gen_case(seed: int, types: list[str]) -> dict:
    rng = random.Random(seed)
    caveats = gen_caveats(rng, types)
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
    case["lookup_subjects"] = gen_lookup_subjects(rng, case)
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


def gen_lookup_subjects(rng: random.Random, case: dict) -> list[dict]:
    """2-4 lookup subjects questions: mostly `user`, sometimes a definition that some
    relation admits as a plain object (an arrow's tupleset), never a subject relation
    (arbiter's lookup subjects takes none)."""
    plain = sorted({option_parts(o)[0] for d in case["defs"] for r in d["relations"]
                    for o in r["options"]
                    if option_parts(o)[0] != "user" and not option_parts(o)[1]})
    out = []
    for _ in range(rng.randint(2, 4)):
        d = rng.choice(case["defs"])
        perm = rng.choice([x["name"] for x in d["perms"] + d["relations"]])
        subject_type = rng.choice(plain) if plain and rng.random() < 0.15 else "user"
        q = {"resource": f"{d['name']}:{rng.choice(IDS)}", "permission": perm,
             "subject_type": subject_type}
        ctx = request_context(rng, case)
        if ctx is not None:
            q["context"] = ctx
        out.append(q)
    return out


def oracle_spec(case: dict) -> dict:
    """The case as arbiter is asked it (oracle format plus `lookup_subjects`)."""
    return {"schema": render_schema(case), "relationships": case["relationships"],
            "checks": case["checks"], "lookups": case["lookups"],
            "lookup_subjects": case.get("lookup_subjects", [])}


def spicedb_side(case: dict):
    """The case as SpiceDB is asked it, and how to read its answers back: the same case,
    except for the structure mix, whose cyclic data SpiceDB gets unrolled
    (differential_structure.unroll)."""
    if case.get("mix") == "structure":
        import differential_structure
        return differential_structure.unroll(case)
    return oracle_spec(case), (lambda answers: answers)


QUERY_KINDS = ("checks", "lookups", "lookup_subjects")


# ---------------------------------------------------------------------------------------
# The two sides.
# ---------------------------------------------------------------------------------------


class Oracle:
    """SpiceDB through scripts/differential_oracle.py (one subprocess, one fresh in-memory
    SpiceDB per case), which imports the peer's sdbpeer.py from `peer`."""

    def __init__(self, peer: str):
        self.peer = peer
        self.script = os.path.join(ROOT, "scripts", "differential_oracle.py")

    def run(self, spec: dict) -> dict:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
            name = f.name
        try:
            proc = subprocess.run([sys.executable, self.script, name, "--peer", self.peer],
                                  capture_output=True, text=True, timeout=600)
        finally:
            os.unlink(name)
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"oracle failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
        checks = [norm_oracle_check(v) for v in out["checks"]]
        lookups = [norm_oracle_lookup(v) for v in out["lookups"]]
        subjects = [norm_oracle_subjects(v) for v in out["lookup_subjects"]]
        return {"checks": checks, "lookups": lookups, "lookup_subjects": subjects,
                "error": out.get("error")}


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


def norm_oracle_subjects(v):
    """SpiceDB's LookupSubjects stream as a normalised answer: definite and conditional
    ids (`*` among them for a wildcard), and the ids the wildcard excludes, definitely or
    conditionally. An id streamed twice counts with its best permissionship (as for
    lookups); a wildcard streamed twice keeps the exclusions of its best entry."""
    if isinstance(v, str):
        return v
    has, cond = set(), set()
    star = None
    for e in v["subjects"]:
        (cond if e["conditional"] else has).add(e["id"])
        if e["id"] == "*" and (star is None or (star["conditional"] and not e["conditional"])):
            star = e
    excl = star["excluded"] if star else []
    return {"has": sorted(has), "conditional": sorted(cond - has),
            "excluded": sorted(x["id"] for x in excl if not x["conditional"]),
            "excluded_conditional": sorted(x["id"] for x in excl if x["conditional"])}


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
        """Answers an oracle-format case (schema text, relationships, checks, lookups,
        lookup_subjects)."""
        self.clear()

        def refused(msg: str) -> dict:
            out = {k: [msg] * len(case.get(k) or []) for k in QUERY_KINDS}
            out["error"] = msg
            return out

        status, ans = self.post("/v1/schema", {"schema": case["schema"]})
        if status != 200:
            return refused(f"error: schema: {err_text(ans)}")
        self.types = sorted({r.split(":", 1)[0] for r in case["relationships"]})
        if case["relationships"]:
            updates = [{"op": "touch", "relationship": r} for r in case["relationships"]]
            status, ans = self.post("/v1/relationships/write", {"updates": updates})
            if status != 200:
                return refused(f"error: relationships: {err_text(ans)}")
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
        lookups = [self.lookup(q) for q in case["lookups"]]
        subjects = [self.lookup_subjects(q) for q in case.get("lookup_subjects") or []]
        return {"checks": checks, "lookups": lookups, "lookup_subjects": subjects, "error": None}

    def lookup_subjects(self, q: dict):
        """All pages of `/v1/lookup/subjects`, normalised as norm_oracle_subjects does
        (arbiter's `excluded` comes with the first page and is never conditional)."""
        if q.get("subject_relation"):  # arbiter's lookup subjects takes none
            return "error: arbiter's lookup subjects takes no subject relation"
        pages = self.pages("/v1/lookup/subjects", q, {
            "resource": q["resource"], "permission": q["permission"],
            "subject_type": q["subject_type"]})
        if isinstance(pages, str):
            return pages
        has = [x for page in pages for x in page["subjects"]]
        cond = [c["id"] for page in pages for c in page.get("conditional", [])]
        excluded = pages[0].get("excluded", [])
        return {"has": sorted(set(has)), "conditional": sorted(set(cond) - set(has)),
                "excluded": sorted(set(excluded)), "excluded_conditional": []}

    def pages(self, path: str, q: dict, body: dict):
        """Every page of a paged lookup (at most 100 of 1000), or the first error as text."""
        body = {**body, "limit": 1000}
        if q.get("context"):
            body["context"] = q["context"]
        out = []
        for _ in range(100):
            status, ans = self.post(path, body)
            if status != 200:
                return f"error: {err_text(ans)}"
            out.append(ans)
            if not ans.get("cursor"):
                break
            body["cursor"] = ans["cursor"]
        return out

    def lookup(self, q: dict):
        pages = self.pages("/v1/lookup/resources", q, {
            "resource_type": q["resource_type"], "permission": q["permission"],
            "subject": q["subject"]})
        if isinstance(pages, str):
            return pages
        return {"has": sorted(x for page in pages for x in page["resources"]),
                "conditional": sorted(c["id"] for page in pages
                                      for c in page.get("conditional", []))}


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


OTHER = "<any other id>"
LEVEL = {2: "allowed", 1: "conditional", 0: "denied"}


def subject_levels(v: dict, reading: str) -> dict:
    """What a normalised lookup subjects answer says of each id it names and of any other
    id (OTHER): 2 allowed, 1 conditional, 0 denied.

    SpiceDB's reading (`spicedb`): an id holds through its own entry or through the
    wildcard, whichever is better; the wildcard reaches every id but those it excludes
    (a conditionally excluded id at most conditionally). SpiceDB lists `alice` as
    conditional beside an unconditional `*` when both paths exist.
    arbiter's reading (`arbiter`): every id named under the resource is checked, so its
    own entry is its whole answer; `excluded` lists the named ids the check denies while
    `*` holds; any other id gets the wildcard's answer."""
    def level(x):
        return 2 if x in v["has"] else 1 if x in v["conditional"] else 0

    star = level("*")
    ids = {*v["has"], *v["conditional"], *v["excluded"], *v["excluded_conditional"]} - {"*"}
    out = {OTHER: star}
    for x in ids:
        if reading == "arbiter":
            out[x] = level(x) if level(x) or x in v["excluded"] else star
        else:
            wild = 0 if x in v["excluded"] else min(star, 1) if x in v["excluded_conditional"] else star
            out[x] = max(level(x), wild)
    return out


def same_subjects(a, s) -> bool:
    """arbiter's lookup subjects answer against SpiceDB's: errors as `same`; answers by
    what they say of every id either names and of every other id (subject_levels)."""
    ka, ks = kind(a), kind(s)
    if ka == "error" or ks == "error":
        return ka == ks
    la, ls = subject_levels(a, "arbiter"), subject_levels(s, "spicedb")
    return all(la.get(x, la[OTHER]) == ls.get(x, ls[OTHER]) for x in {*la, *ls})


def subjects_in_dispute(a: dict, s: dict) -> list[tuple[str, str, str]]:
    la, ls = subject_levels(a, "arbiter"), subject_levels(s, "spicedb")
    return [(x, LEVEL[la.get(x, la[OTHER])], LEVEL[ls.get(x, ls[OTHER])])
            for x in sorted({*la, *ls}) if la.get(x, la[OTHER]) != ls.get(x, ls[OTHER])]


WHAT = {"checks": "check", "lookups": "lookup", "lookup_subjects": "subjects"}


def compare(case: dict, arb: dict, sdb: dict, stats: dict | None = None) -> list[dict]:
    out = []
    for key in QUERY_KINDS:
        what = WHAT[key]
        for i, (a, s) in enumerate(zip(arb[key], sdb[key])):
            ok = same_subjects(a, s) if key == "lookup_subjects" else same(a, s)
            if key == "lookup_subjects" and ok and stats is not None and a != s \
                    and kind(a) != "error":
                stats["subjects_same_meaning"] = stats.get("subjects_same_meaning", 0) + 1
            if not ok:
                out.append({"what": what, "key": key, "index": i, "query": case[key][i],
                            "arbiter": show(a), "spicedb": s, "sig": (what, sig_kind(a), sig_kind(s))})
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

    def answers(self, case: dict) -> tuple[dict, dict]:
        """(arbiter's answers, SpiceDB's answers read back) for a case."""
        sdb_spec, back = spicedb_side(case)
        sdb = back(self.oracle.run(sdb_spec))
        arb = self.arbiter.run(oracle_spec(case))
        return arb, sdb

    def mismatches(self, case: dict) -> list[dict]:
        self.runs += 1
        arb, sdb = self.answers(case)
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
    for key in QUERY_KINDS:
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
    key = mismatch["key"]
    for other in QUERY_KINDS:
        c[other] = []
    c[key] = [case[key][mismatch["index"]]]

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


def disputed(m: dict, case: dict | None = None) -> list[tuple[str, str, str, str]]:
    """For a lookup or lookup subjects mismatch: (resource, subject, arbiter's lookup
    answer, SpiceDB's lookup answer) for every id the two sides disagree about. A
    subject id disputed only through the wildcard is asked as a fresh id. When SpiceDB's
    lookup failed and arbiter's answered, every id arbiter's answer speaks of is in
    dispute (SpiceDB's lookup answer "error"), so that SpiceDB's own checks can say
    whether they would have failed too."""
    a, s, q = m["arbiter"], m["spicedb"], m["query"]
    if isinstance(a, str):
        return []
    if isinstance(s, str):
        if m["key"] == "lookups":
            return [(f"{q['resource_type']}:{rid}", q["subject"], lookup_id_answer(a, rid), "error")
                    for rid in sorted({*a["has"], *a["conditional"]})]
        levels = subject_levels(a, "arbiter")
        # Every id of the subject type the data names, too: arbiter's answer speaks of
        # them through "any other id".
        named = {rel.split("@", 1)[1].split("[", 1)[0].split("#", 1)[0]
                 for rel in (case or {}).get("relationships", [])}
        for subject in named:
            kind_, _, x = subject.partition(":")
            if kind_ == q["subject_type"] and x != "*":
                levels.setdefault(x, levels[OTHER])
        return [(q["resource"], f"{q['subject_type']}:{'zz_other' if x == OTHER else x}",
                 LEVEL[level], "error")
                for x, level in sorted(levels.items())]
    if m["key"] == "lookups":
        return [(f"{q['resource_type']}:{rid}", q["subject"], lookup_id_answer(a, rid),
                 lookup_id_answer(s, rid))
                for rid in sorted({*a["has"], *a["conditional"], *s["has"], *s["conditional"]})
                if lookup_id_answer(a, rid) != lookup_id_answer(s, rid)]
    return [(q["resource"], f"{q['subject_type']}:{'zz_other' if x == OTHER else x}", la, ls)
            for x, la, ls in subjects_in_dispute(a, s)]


def probe(runner: Runner, case: dict, found: list[dict]) -> list[list[dict]]:
    """For lookup and lookup subjects mismatches: what a check on each id the two sides
    disagree about answers, on both sides (with the lookup's context). One run for all."""
    c = copy.deepcopy(case)
    for key in QUERY_KINDS:
        c[key] = []
    owners = []
    for n, m in enumerate(found):
        for resource, subject, la, ls in disputed(m, case):
            chk = {"resource": resource, "permission": m["query"]["permission"], "subject": subject}
            if m["query"].get("context"):
                chk["context"] = m["query"]["context"]
            c["checks"].append(chk)
            owners.append((n, la, ls))
    out: list[list[dict]] = [[] for _ in found]
    if not c["checks"]:
        return out
    arb, sdb = runner.answers(c)
    for (n, la, ls), chk, x, y in zip(owners, c["checks"], arb["checks"], sdb["checks"]):
        out[n].append({"check": chk, "arbiter": show(x), "arbiter_kind": kind(x), "spicedb": y,
                       "arbiter_lookup": la, "spicedb_lookup": ls})
    return out


def deliberate(m: dict, case: dict) -> str | None:
    """A documented, deliberate difference this mismatch is an instance of, or None."""
    a, s = m["arbiter"], m["spicedb"]
    if kind(a) == "error" and "invalid `context`" in a and kind(s) != "error":
        # docs/CAVEATS.md "The request context is checked up front": arbiter refuses a
        # wrong-typed value whatever the data; SpiceDB only where it evaluates a caveat.
        return "context refused up front (CAVEATS.md)"
    if m["what"] == "lookup" and kind(s) == "error" and "evaluation error" in s \
            and kind(a) != "error" and ".all(" in render_schema(case):
        # DIFFERENTIAL.md: SpiceDB's LookupResources evaluates a caveat reached through a
        # `.all()` arrow eagerly and fails where no check would need it; arbiter answers.
        return "SpiceDB LookupResources errors eagerly under .all() (DIFFERENTIAL.md)"
    return None


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
    ap.add_argument("--mix", choices=["default", "structure"], default="default",
                    help="default: random schemas over caveats and expiration (acyclic data); "
                         "structure: nested groups and parent folders with cycles in the data "
                         "(scripts/differential_structure.py)")
    ap.add_argument("--arbiter", default=os.path.join(ROOT, "target", "release", "arbiter"),
                    help="the arbiter binary")
    ap.add_argument("--peer", default=DEFAULT_PEER,
                    help="the SpiceDB peer directory (its sdbpeer.py is imported)")
    ap.add_argument("--keep-going", action="store_true", help="go on after a mismatch")
    ap.add_argument("--types", default=None,
                    help="caveat parameter types to draw from (comma-separated; default all "
                         "eleven, for --mix structure all but map<int> and ipaddress)")
    ap.add_argument("--no-shrink", action="store_true", help="print mismatches unshrunk")
    ap.add_argument("--shrink-budget", type=int, default=150, help="most shrink steps per mismatch")
    ap.add_argument("--replay", metavar="FILE",
                    help="answer one oracle-format case on both sides, print both, and exit")
    ap.add_argument("--show", type=int, help="print the case of this seed (as arbiter is asked it) and exit")
    ap.add_argument("--show-spicedb", type=int, metavar="SEED",
                    help="print the case of this seed as SpiceDB is asked it (unrolled for "
                         "--mix structure) and exit")
    ap.add_argument("--edges", action="store_true",
                    help="draw values at the limits of CEL's arithmetic (int bounds, durations "
                         "near an int64 of nanoseconds, timestamps near 0001 and 9999) and "
                         "arithmetic atoms over them; changes every seed's case")
    a = ap.parse_args()
    global EDGES
    EDGES = a.edges
    if a.types is None:
        types = ALL_TYPES
        if a.mix == "structure":
            import differential_structure
            types = differential_structure.TYPES
    else:
        types = [t.strip() for t in a.types.split(",") if t.strip()]
    for t in types:
        if t not in PREFIX:
            ap.error(f"unknown type {t}")
    if a.seeds < 0 or a.shrink_budget < 0:
        ap.error("--seeds and --shrink-budget take a number >= 0")
    if a.mix == "structure":
        import differential_structure
        generate = differential_structure.gen_structure_case
    else:
        generate = gen_case
    if a.show is not None:
        print(json.dumps(oracle_spec(generate(a.show, types)), indent=1))
        return 0
    if a.show_spicedb is not None:
        print(json.dumps(spicedb_side(generate(a.show_spicedb, types))[0], indent=1))
        return 0

    runner = Runner(Oracle(a.peer), Arbiter(a.arbiter))
    if a.replay:
        try:
            spec = json.load(open(a.replay))
            for key in QUERY_KINDS:
                spec.setdefault(key, [])
            sdb = runner.oracle.run(spec)
            arb = runner.arbiter.run(spec)
        finally:
            runner.arbiter.stop()
        bad = 0
        for what in QUERY_KINDS:
            for q, x, y in zip(spec[what], arb[what], sdb[what]):
                ok = same_subjects(x, y) if what == "lookup_subjects" else same(x, y)
                bad += not ok
                print(f"{'ok ' if ok else 'MISMATCH'} {json.dumps(q)}\n    arbiter {show(x)}\n    spicedb {y}")
        return 1 if bad else 0
    stats = {"cases": 0, "checks": 0, "lookups": 0, "lookup_subjects": 0, "mismatches": 0,
             "both_error_cases": 0, "spicedb_lookup_vs_check": 0, "subjects_same_meaning": 0,
             "answers": {}, "subject_answers": {}, "deliberate": {}}
    failed_seeds = []
    t0 = time.time()
    try:
        for seed in range(a.start, a.start + a.seeds):
            case = generate(seed, types)
            arb, sdb = runner.answers(case)
            stats["cases"] += 1
            for key in QUERY_KINDS:
                stats[key] += len(case[key])
            if sdb.get("error") and arb.get("error"):
                stats["both_error_cases"] += 1
            for v in sdb["checks"]:
                stats["answers"][kind(v)] = stats["answers"].get(kind(v), 0) + 1
            for v in sdb["lookup_subjects"]:
                k = kind(v) if kind(v) == "error" else "empty" if not (v["has"] or v["conditional"]) \
                    else "wildcard" if "*" in v["has"] + v["conditional"] else "ids"
                stats["subject_answers"][k] = stats["subject_answers"].get(k, 0) + 1
            found = compare(case, arb, sdb, stats)
            for m in list(found):
                why = deliberate(m, case)
                if why:
                    found.remove(m)
                    stats["deliberate"][why] = stats["deliberate"].get(why, 0) + 1
            lookups = [m for m in found if m["what"] in ("lookup", "subjects")]
            if lookups:
                for m, probes in zip(lookups, probe(runner, case, lookups)):
                    if spicedb_lookup_disagrees_with_its_check(probes):
                        found.remove(m)
                        stats["spicedb_lookup_vs_check"] += 1
                        which = "resources" if m["what"] == "lookup" else "subjects"
                        print(f"seed {seed}: SpiceDB's lookup {which} disagrees with its own "
                              f"checks (arbiter follows the checks): {m['query']}: "
                              + "; ".join(f"{p['check']['resource']} {p['check']['subject']}: "
                                          f"lookup {p['spicedb_lookup']}, check {p['spicedb']}"
                                          for p in probes), flush=True)
            if not found:
                continue
            stats["mismatches"] += len(found)
            failed_seeds.append(seed)
            print(f"seed {seed}: {len(found)} mismatch(es)", flush=True)
            first = found[0]
            small, m = (case, first) if a.no_shrink else shrink(runner, case, first, a.shrink_budget)
            report = {"seed": seed, "mix": a.mix, "case": oracle_spec(small), "arbiter": m["arbiter"],
                      "spicedb": m["spicedb"], "query": m["query"]}
            if small.get("mix") == "structure":
                report["spicedb_case"] = spicedb_side(small)[0]
            if m["what"] in ("lookup", "subjects"):
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
    print(f"mix {a.mix}, seeds {a.start}..{a.start + stats['cases'] - 1}: {stats['cases']} cases, "
          f"{stats['checks']} checks, {stats['lookups']} lookups, {stats['lookup_subjects']} "
          f"lookup subjects compared; spicedb check answers {stats['answers']}; spicedb lookup "
          f"subjects answers {stats['subject_answers']}; lookup subjects answers listed "
          f"differently with the same meaning: {stats['subjects_same_meaning']}; cases where "
          f"both sides refused the schema or data: {stats['both_error_cases']}; deliberate "
          f"differences (not counted): {stats['deliberate']}; SpiceDB lookups "
          f"that disagree with SpiceDB's checks (not counted): {stats['spicedb_lookup_vs_check']}; "
          f"mismatches {stats['mismatches']} in seeds {failed_seeds}; {runner.runs} extra shrink "
          f"runs; {dt:.0f} s", flush=True)
    return 1 if stats["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
