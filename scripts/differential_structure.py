"""The `--mix structure` cases of scripts/differential.py: cycles in the data.

Each seed draws a schema over three definitions besides `user`:

  grp     nested groups: `member` admits users and `grp#member` (plain, caveated or
          expiring); sometimes a `blocked` relation and an `access` permission;
  folder  a `parent` tupleset of folders (plain, caveated, expiring) and `viewer`,
          `editor`, `banned` relations; its permissions recurse through `parent` with
          `->`, `.any()` and `.all()` arrows, unions, intersections and exclusions;
  doc     a `folder` tupleset and its own relations; permissions over anything, with
          exclusions of anything (a doc is in no cycle);

and random relationships in which groups contain groups and folders have parents
*with cycles* (a group may contain itself). Ids carry the seed (`g0_s17`), so a server
reused across cases never confuses two of them.

SpiceDB has no cycle rule: it answers "max depth exceeded" on cyclic data. arbiter
answers with the least fixed point (DESIGN §3). So SpiceDB is given an **acyclic
unrolling** of the same data (`unroll`): every object of a definition that takes part in a
cycle of the schema (grp, folder) is copied once per level `0..D`, an edge between two
such objects (`grp:a#member@grp:b#member`, `folder:x#parent@folder:y`) goes from level
L to level L-1 (none leaves level 0), every other tuple of such an object is copied to
every level, and tuples of other definitions (doc) point to the top level D. A question
about `folder:x` asks SpiceDB about `folder:x_lD`. docs/DIFFERENTIAL.md gives the
argument that level D holds exactly the least fixed point when D is at least the number
of (object, name) pairs an edge between levels can reach, and why the subtracted side of
an exclusion in grp or folder must not read such an edge (the generator never puts it
there; `unroll` refuses a case that does).
"""

from __future__ import annotations

import random

import differential as d

GROUP, FOLDER, DOC = "grp", "folder", "doc"

# Caveat parameter types by default: no `map<int>` (indexing an absent key) and no
# `ipaddress` (`in_cidr` of a string that is no CIDR), the two whose caveats can fail to
# evaluate. The unrolling holds the fixed point's answer, not its errors: it repeats
# terms the fixed point absorbs (`g = a[c1] + g[c2]` unrolls to `a[c1] + (a[c1] & c2) …`),
# and SpiceDB fails on such a term's caveat where the fixed point never needs it
# (structure seed 134 of the first run, docs/DIFFERENTIAL.md).
TYPES = [t for t in d.ALL_TYPES if t not in ("map<int>", "ipaddress")]

COUNTS = {  # tuples per object and relation: (least, most)
    "member": (1, 3), "blocked": (0, 1), "parent": (0, 2), "viewer": (1, 3),
    "editor": (0, 2), "banned": (0, 1), "folder": (1, 2),
}


# ---------------------------------------------------------------------------------------
# Generation.
# ---------------------------------------------------------------------------------------


def variants(rng: random.Random, base: str, cavs: list[str], opts: list[str]) -> list[str]:
    return [o for o in d.with_traits(rng, base, cavs, set(opts)) if o not in opts]


def gen_expr(rng: random.Random, pos: list, neg: list, depth: int = 0):
    """A permission expression over `pos` atoms whose subtracted sides use `neg` atoms
    only. Every operator is parenthesised, so that the text parses as the tree does
    whatever the precedence (the default mix exercises precedence)."""
    if depth >= 2 or rng.random() < 0.4:
        return rng.choice(pos)
    op = rng.choice(["+", "+", "+", "&", "-"])
    left = gen_expr(rng, pos, neg, depth + 1)
    right = gen_expr(rng, neg, neg, depth + 1) if op == "-" else gen_expr(rng, pos, neg, depth + 1)
    return (op, left, right, True)


def arrow(rng: random.Random, tupleset: str, target: str):
    return ("arrow", tupleset, target, rng.choice(["->", "->", "any", "all"]))


def gen_schema(rng: random.Random, cavs: list[str]) -> list[dict]:
    # grp
    member = variants(rng, "user", cavs, [])
    member += variants(rng, f"{GROUP}#member", cavs, member)
    grp = {"name": GROUP, "relations": [{"name": "member", "options": member}], "perms": []}
    if rng.random() < 0.5:
        grp["relations"].append({"name": "blocked", "options": ["user"]})
        grp["perms"].append({"name": "access", "expr": rng.choice([
            ("-", ("ref", "member"), ("ref", "blocked"), True),
            ("+", ("ref", "member"), ("ref", "blocked"), True),
            ("&", ("ref", "member"), ("ref", "blocked"), True)])})
    group_sets = [f"{GROUP}#member"] + ([f"{GROUP}#access"] if grp["perms"] else [])

    def subjects(wildcard: float, sets: float) -> list[str]:
        opts = variants(rng, "user", cavs, [])
        if rng.random() < wildcard:
            opts += variants(rng, "user:*", cavs, opts)
        if rng.random() < sets:
            opts += variants(rng, rng.choice(group_sets), cavs, opts)
        return opts

    # folder: recursive through `parent`
    folder = {"name": FOLDER, "relations": [
        {"name": "parent", "options": variants(rng, FOLDER, cavs, [])},
        {"name": "viewer", "options": subjects(0.3, 0.7)},
        {"name": "editor", "options": subjects(0.0, 0.5)},
        {"name": "banned", "options": subjects(0.2, 0.5)},
    ], "perms": []}
    # SpiceDB (caches off) walks every path of the unrolled data: a permission with k
    # arrows over `parent` costs about (k x parents)^D, so each has one arrow at most.
    names = ["view"] + (["edit"] if rng.random() < 0.5 else [])
    plain = [("ref", r["name"]) for r in folder["relations"] if r["name"] != "parent"]
    for k, name in enumerate(names):
        earlier = [("ref", n) for n in names[:k]]
        # Subtracted sides read no `parent` edge, directly or through a permission.
        neg = plain + [("ref", p["name"]) for p in folder["perms"] if not touches_parent(folder, p["expr"])]
        expr = gen_expr(rng, plain + earlier, neg)
        if k == 0 or rng.random() < 0.5:  # `view` always recurses
            target = "view" if k == 0 else rng.choice(names)
            expr = (rng.choice(["+", "+", "+", "&"]), expr, arrow(rng, "parent", target), True)
        if rng.random() < 0.25:
            expr = ("-", expr, rng.choice(neg), True)
        folder["perms"].append({"name": name, "expr": expr})

    # doc: no cycle through it, anything goes
    doc = {"name": DOC, "relations": [
        {"name": "folder", "options": variants(rng, FOLDER, cavs, [])},
        {"name": "viewer", "options": subjects(0.4, 0.6)},
        {"name": "banned", "options": subjects(0.2, 0.5)},
    ], "perms": []}
    for k in range(rng.randint(1, 3)):
        atoms = [("ref", "viewer"), ("ref", "banned")] + [("ref", p["name"]) for p in doc["perms"]]
        atoms += [arrow(rng, "folder", t) for t in names]
        expr = gen_expr(rng, atoms, atoms)
        if k == 0:
            expr = ("+", ("ref", "viewer"), arrow(rng, "folder", "view"), True) if rng.random() < 0.5 \
                else (rng.choice(["+", "&", "-"]), expr, arrow(rng, "folder", rng.choice(names)), True)
        doc["perms"].append({"name": f"perm_{'abc'[k]}", "expr": expr})
    return [grp, folder, doc]


def touches_parent(folder: dict, expr) -> bool:
    perms = {p["name"]: p["expr"] for p in folder["perms"]}

    def walk(e) -> bool:
        if e[0] == "ref":
            if e[1] == "parent":
                return True
            return e[1] in perms and walk(perms[e[1]])
        if e[0] == "arrow":
            return e[1] == "parent"
        return walk(e[1]) or walk(e[2])
    return walk(expr)


def gen_structure_case(seed: int, types: list[str]) -> dict:
    rng = random.Random(f"structure-{seed}")
    sfx = f"_s{seed}"
    caveats = d.gen_caveats(rng, types)[:2]
    cavs = [c["name"] for c in caveats]
    case = {"mix": "structure", "caveats": caveats, "defs": gen_schema(rng, cavs)}
    d.drop_wildcard_subject_sets(case)
    ids = {GROUP: [f"g{i}{sfx}" for i in range(rng.randint(2, 4))],
           FOLDER: [f"f{i}{sfx}" for i in range(rng.randint(2, 3))],
           DOC: [f"d{i}{sfx}" for i in range(rng.randint(1, 2))]}
    users = [f"u{i}{sfx}" for i in range(1, 5)]
    out: dict[str, str] = {}
    for df in case["defs"]:
        for rel in df["relations"]:
            lo, hi = COUNTS[rel["name"]]
            for rid in ids[df["name"]]:
                for _ in range(rng.randint(lo, hi)):
                    option = rng.choice(rel["options"])
                    typ, subrel, wildcard, caveat, expiring = d.option_parts(option)
                    if typ == "user":
                        subject = "user:*" if wildcard else f"user:{rng.choice(users)}"
                    else:
                        subject = f"{typ}:{rng.choice(ids[typ])}" + (f"#{subrel}" if subrel else "")
                    ctx = d.stored_context(rng, d.caveat_by_name(case, caveat)) if caveat else None
                    expiration = (d.PAST if rng.random() < 0.3 else d.FUTURE) if expiring else None
                    text = f"{df['name']}:{rid}#{rel['name']}@{subject}" + d.rel_suffix(caveat, ctx, expiration)
                    out[d.rel_key(text)] = text
    case["relationships"] = list(out.values())
    asked = users + [f"u5{sfx}"]  # u5 is in no relationship: only a wildcard reaches it
    objects = [(df, rid) for df in case["defs"] for rid in ids[df["name"]]]

    def names(df):
        return [x["name"] for x in df["perms"]] * 2 + [x["name"] for x in df["relations"]
                                                        if x["name"] not in ("parent", "folder")]

    def with_context(q):
        ctx = d.request_context(rng, case)
        if ctx is not None:
            q["context"] = ctx
        return q

    case["checks"] = []
    for _ in range(rng.randint(8, 14)):
        df, rid = rng.choice(objects)
        case["checks"].append(with_context({"resource": f"{df['name']}:{rid}",
                                            "permission": rng.choice(names(df)),
                                            "subject": f"user:{rng.choice(asked)}"}))
    case["lookups"] = []
    for _ in range(rng.randint(2, 3)):
        df = rng.choice(case["defs"])
        case["lookups"].append(with_context({"resource_type": df["name"],
                                             "permission": rng.choice(names(df)),
                                             "subject": f"user:{rng.choice(asked)}"}))
    case["lookup_subjects"] = []
    for _ in range(rng.randint(2, 4)):
        df, rid = rng.choice(objects)
        case["lookup_subjects"].append(with_context({"resource": f"{df['name']}:{rid}",
                                                     "permission": rng.choice(names(df)),
                                                     "subject_type": "user"}))
    return case


# ---------------------------------------------------------------------------------------
# The acyclic unrolling SpiceDB is given.
# ---------------------------------------------------------------------------------------


def type_classes(case: dict) -> dict[str, frozenset]:
    """Each definition's strongly connected component in the schema's type graph
    (T -> U when a relation of T admits U or U#r); only definitions on a cycle."""
    edges = {df["name"]: {d.option_parts(o)[0] for r in df["relations"] for o in r["options"]}
             for df in case["defs"]}
    reach = {t: set(us) for t, us in edges.items()}
    changed = True
    while changed:
        changed = False
        for t in reach:
            more = set().union(*(reach.get(u, set()) for u in reach[t])) - reach[t]
            if more:
                reach[t] |= more
                changed = True
    return {t: frozenset(u for u in reach if u in reach[t] and t in reach[u])
            for t in reach if t in reach[t]}


def shifting(case: dict, classes: dict, df: dict, rel: dict) -> bool:
    """Whether the tuples of `df#rel` can be edges between levels (their subject's
    definition is in df's class)."""
    cls = classes.get(df["name"])
    return bool(cls) and any(d.option_parts(o)[0] in cls for o in rel["options"])


def check_exclusions(case: dict, classes: dict) -> None:
    """The subtracted side of an exclusion in a definition on a cycle must read no edge
    between levels, directly or through a permission of the same definition: such a side
    is not monotone in the levels below, so the unrolling would not hold the fixed point
    (and on cyclic data it is a cycle through an exclusion: DESIGN §3)."""
    for df in case["defs"]:
        if df["name"] not in classes:
            continue
        rels = {r["name"]: r for r in df["relations"]}
        perms = {p["name"]: p["expr"] for p in df["perms"]}

        def touches(e) -> bool:
            if e[0] == "ref":
                if e[1] in rels:
                    return shifting(case, classes, df, rels[e[1]])
                return e[1] in perms and touches(perms[e[1]])
            if e[0] == "arrow":
                return e[1] in rels and shifting(case, classes, df, rels[e[1]])
            return touches(e[1]) or touches(e[2])

        def walk(e) -> None:
            if e[0] in ("ref", "arrow"):
                return
            if e[0] == "-" and touches(e[2]):
                raise ValueError(f"{df['name']}: an exclusion subtracts an edge between levels")
            walk(e[1])
            walk(e[2])

        for p in df["perms"]:
            walk(p["expr"])


def depth_bound(case: dict, classes: dict) -> dict[frozenset, int]:
    """D per class: how many (object, name) pairs an edge between levels can reach — the
    subject sets' relations and the arrows' targets over shifting tuplesets, times the
    objects of that definition in the data."""
    objects: dict[str, set] = {}
    for r in case["relationships"]:
        res, subj = d.rel_key(r).split("@", 1)
        for obj in (res.split("#")[0], subj.split("#")[0]):
            typ, oid = obj.split(":", 1)
            objects.setdefault(typ, set()).add(oid)
    targets = set()
    for df in case["defs"]:
        for rel in df["relations"]:
            if not shifting(case, classes, df, rel):
                continue
            for o in rel["options"]:
                typ, subrel, _, _, _ = d.option_parts(o)
                if typ not in classes.get(df["name"], ()):
                    continue
                if subrel:
                    targets.add((typ, subrel))
                else:
                    for p in df["perms"]:
                        targets |= {(typ, t) for t in arrow_targets(p["expr"], rel["name"])}
    bound = {cls: 1 for cls in set(classes.values())}
    for typ, _ in targets:
        bound[classes[typ]] += len(objects.get(typ, ()))
    return bound


def arrow_targets(e, tupleset: str) -> set:
    if e[0] == "ref":
        return set()
    if e[0] == "arrow":
        return {e[2]} if e[1] == tupleset else set()
    return arrow_targets(e[1], tupleset) | arrow_targets(e[2], tupleset)


def unroll(case: dict):
    """(SpiceDB's spec, a function reading SpiceDB's answers back as answers about the
    case's own ids)."""
    classes = type_classes(case)
    check_exclusions(case, classes)
    bound = depth_bound(case, classes)

    def level_id(typ: str, oid: str, level: int) -> str:
        return f"{oid}_l{level}"

    def top(obj: str) -> str:
        """`T:x` or `T:x#r` as a tuple of another class (or a question) names it."""
        base, sep, rel = obj.partition("#")
        typ, oid = base.split(":", 1)
        if typ not in classes or oid == "*":
            return obj
        return f"{typ}:{level_id(typ, oid, bound[classes[typ]])}" + (sep + rel)

    rels = []
    for r in case["relationships"]:
        key = d.rel_key(r)
        suffix = r[len(key):]
        res, subj = key.split("@", 1)
        robj, rrel = res.split("#", 1)
        rtyp, rid = robj.split(":", 1)
        styp = subj.split(":", 1)[0]
        if rtyp not in classes:
            rels.append(f"{robj}#{rrel}@{top(subj)}{suffix}")
            continue
        depth = bound[classes[rtyp]]
        if styp in classes[rtyp]:  # an edge between levels: L -> L-1
            sbase, sep, srel = subj.partition("#")
            sid = sbase.split(":", 1)[1]
            for level in range(1, depth + 1):
                rels.append(f"{rtyp}:{level_id(rtyp, rid, level)}#{rrel}@"
                            f"{styp}:{level_id(styp, sid, level - 1)}{sep}{srel}{suffix}")
        else:
            for level in range(depth + 1):
                rels.append(f"{rtyp}:{level_id(rtyp, rid, level)}#{rrel}@{top(subj)}{suffix}")

    spec = d.oracle_spec(case)
    spec["relationships"] = rels
    spec["checks"] = [dict(c, resource=top(c["resource"]), subject=top(c["subject"]))
                      for c in case["checks"]]
    spec["lookups"] = [dict(q, subject=top(q["subject"])) for q in case["lookups"]]
    spec["lookup_subjects"] = [dict(q, resource=top(q["resource"])) for q in case["lookup_subjects"]]

    def back(answers: dict) -> dict:
        out = dict(answers)
        lookups = []
        for q, v in zip(case["lookups"], answers["lookups"]):
            typ = q["resource_type"]
            if isinstance(v, str) or typ not in classes:
                lookups.append(v)
                continue
            tail = f"_l{bound[classes[typ]]}"
            lookups.append({k: sorted(x[: -len(tail)] for x in ids if x.endswith(tail))
                            for k, ids in v.items()})
        out["lookups"] = lookups
        return out

    return spec, back
