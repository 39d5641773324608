#!/usr/bin/env python3
"""Import circles among the modules of a Rust library crate (default: spoke/src).

How it works:
  * Every .rs file under the crate's src/ is a module (lib.rs is the root `crate`,
    x.rs and x/mod.rs are `x`, x/y.rs is `x::y`); the binary (main.rs, bin/) is left out,
    since `crate::` there names the binary.
  * Comments (// and doc comments, where intra-doc links live) are removed, then every
    reference is collected: `use` declarations (with nested braces expanded) and inline paths
    starting with `crate::`, `super::` or `self::`. Each path is resolved against the list of
    modules to the longest module prefix it names; the rest is the item (a type, fn, const).
  * Level 1: each module is folded into its top-level module (a module and its own
    submodules count as one), and strongly connected components (Tarjan) of more than one
    top-level module are reported: import circles between parts of the crate.
  * Level 2: inside each folder, the children (each folded with its own submodules) are
    checked the same way, edges to and from the parent left out: circles between siblings.
  * Helpers from a parent: a child that imports from its parent (or from the crate root)
    an item that is not a type (a lowercase fn or an UPPER_CASE const) is reported; a child
    naming its parent's stage type (CamelCase, e.g. `super::Outbound` in outbound/outbox.rs,
    which holds impl blocks of it) is allowed.
  * Unit-test modules in their own file (`tests.rs`) may take anything from their parent.
Exit status 1 if anything is reported.
Usage: python3 tools/import_circles.py hub/src; python3 tools/import_circles.py spoke/src
"""
import os
import re
import sys
from collections import defaultdict


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel == ["lib"]:
        return ()
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        # Drop // comments, but not inside string literals (a rough but sufficient check).
        i = line.find("//")
        while i >= 0:
            if line[:i].count('"') % 2 == 0:
                line = line[:i]
                break
            i = line.find("//", i + 2)
        out.append(line)
    return "\n".join(out)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']"""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas\w+", "", tree)  # `x as y` (whitespace removed: `xasy`) handled below
    return _expand(tree)


def _expand(tree):
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            prefix = tree[:i]
            inner = tree[i + 1 : tree.rindex("}")]
            parts, depth, start = [], 0, 0
            for j, c in enumerate(inner):
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == "," and depth == 0:
                    parts.append(inner[start:j])
                    start = j + 1
            parts.append(inner[start:])
            out = []
            for p in parts:
                if p:
                    out.extend(_expand(prefix + p))
            return out
    return [tree]


def inline_modules(text):
    """Spans of inline `mod name { ... }` blocks (test modules): (start, end, name)."""
    spans = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        spans.append((m.start(), i, m.group(1)))
    return spans


def references(text):
    """(path, inline module names around it) for every reference in `text`."""
    text = strip_comments(text)
    spans = inline_modules(text)

    def inside(pos):
        return tuple(n for a, b, n in spans if a <= pos < b)

    refs = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        body = re.sub(r"\s+as\s+\w+", "", m.group(1))
        refs.extend((r, inside(m.start())) for r in expand_use(body))
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::[\w*]+)+)", text):
        refs.append((m.group(1), inside(m.start())))
    return refs


def resolve(path, here, is_dir_module, modules):
    """The module a path names (longest prefix), and the item after it."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("self", "super"):
        # `self::` in a module is the module itself; `super::` its parent.
        base = here
        rest = segs
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    else:
        return None
    full = base + tuple(rest)
    for i in range(len(full), -1, -1):
        if full[:i] in modules:
            return full[:i], (full[i] if i < len(full) else None)
    return None


def tarjan(nodes, edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) if m else "crate"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "spoke/src"
    files = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(p, root)
            if rel == "main.rs" or rel.startswith("bin" + os.sep):
                continue
            files[module_of(root, p)] = p
    modules = set(files)
    edges = []  # (from, to, item)
    for m, p in files.items():
        for ref, inline in references(open(p, encoding="utf-8").read()):
            # Inside an inline module (`mod tests { use super::*; }`), `super` is the file.
            r = resolve(ref, m + inline, p.endswith("mod.rs"), modules)
            if r is None:
                continue
            target, item = r
            if target != m:
                edges.append((m, target, item))
    problems = 0

    # Level 1: top-level modules, each with its submodules.
    top = defaultdict(set)
    for a, b, _ in edges:
        if a and b and a[0] != b[0]:
            top[a[:1]].add(b[:1])
    nodes = {m[:1] for m in modules if m}
    for comp in tarjan(nodes, top):
        if len(comp) > 1:
            problems += 1
            print("circle between top-level modules:", ", ".join(sorted(name(c) for c in comp)))

    # Level 2: siblings inside each folder.
    parents = {m[:-1] for m in modules if len(m) >= 1}
    for parent in sorted(parents):
        children = {m[: len(parent) + 1] for m in modules if len(m) > len(parent) and m[: len(parent)] == parent}
        sib = defaultdict(set)
        for a, b, _ in edges:
            if len(a) > len(parent) and len(b) > len(parent) and a[: len(parent)] == parent and b[: len(parent)] == parent:
                ca, cb = a[: len(parent) + 1], b[: len(parent) + 1]
                if ca != cb:
                    sib[ca].add(cb)
        if not parent:
            continue  # the root's children are level 1
        for comp in tarjan(children, sib):
            if len(comp) > 1:
                problems += 1
                print(f"circle inside {name(parent)}:", ", ".join(sorted(name(c) for c in comp)))

    # Helpers taken from a parent (or the crate root).
    for a, b, item in sorted(set(edges), key=lambda e: (e[0], e[1], e[2] or "")):
        if a and a[-1] == "tests":
            continue  # a unit-test module (tests.rs) tests its parent: it may use anything
        if len(b) < len(a) and a[: len(b)] == b and item == "*":
            print(f"note: {name(a)} glob-imports its parent {name(b)} (`use super::*`): not judged")
        elif len(b) < len(a) and a[: len(b)] == b and item:
            if not item[0].isupper() or item.isupper():
                problems += 1
                print(f"{name(a)} takes helper `{item}` from its parent {name(b)}")

    n = len(modules)
    if problems == 0:
        print(f"{n} modules, {len(set((a, b) for a, b, _ in edges))} module edges: no import circle, no helper taken from a parent")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
