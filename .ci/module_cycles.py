#!/usr/bin/env python3
"""module_cycles.py: finds import cycles between the modules of each Rust crate.

Usage: .ci/module_cycles.py [-p PACKAGE]... [--exclude PACKAGE]... [--graph]

Reads the workspace's targets from `cargo metadata` (every lib, bin, test, bench and
example of every member, or only the packages named with -p, less those named with
--exclude), follows the `mod`
declarations from each target's root file, and records an edge A -> B when module A
names module B (or an item of B) in a path: `use crate::b::Item`, `crate::b::f()`,
`super::x`, `self::child`, or a child module by its bare name. The tree edges of
`mod b;` themselves are not edges. Comments and string literals are skipped, so
intra-doc links do not count. Exits 1 when a cycle is found and prints, for each, the
modules in it and the line behind each edge. `--graph` prints every edge as well.

A path is followed through modules only, so `crate::Foo` is an edge to the crate root
even when the root merely re-exports `Foo`: name the defining module instead.
"""

import json
import os
import re
import subprocess
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """The text with comments, strings and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)

    def blank(segment):
        out.append("".join("\n" if c == "\n" else " " for c in segment))

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(text[i:j])
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(text[i:j])
            i = j
        elif re.match(r'b?r#*"', text[i:i + 80]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(b?r)(#*)"', text[i:])
            end = text.find('"' + m.group(2), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(2))
            blank(text[i:j])
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            blank(text[i:j])
            i = j
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:i + 16])
            if m:
                blank(text[i:i + m.end()])
                i += m.end()
            else:  # a lifetime or a label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use(tree):
    """`a::{b, c::{self, d}}` -> [[a, b], [a, c], [a, c, d]] (segments only, `as` dropped)."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)
    tree = re.sub(r"\s+", "", tree)

    def parse(s, prefix):
        s = s.strip()
        if not s:
            return []
        brace = s.find("{")
        if brace < 0:
            path = s
            segments = [seg for seg in path.split("::") if seg]
            if segments and segments[-1] == "self":
                segments = segments[:-1]
            if segments and segments[-1] == "*":
                segments = segments[:-1]
            return [prefix + segments]
        head = [seg for seg in s[:brace].split("::") if seg]
        inner = s[brace + 1:s.rfind("}")]
        parts, depth, start = [], 0, 0
        for k, ch in enumerate(inner):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(inner[start:k])
                start = k + 1
        parts.append(inner[start:])
        result = []
        for part in parts:
            result.extend(parse(part, prefix + head))
        return result

    return parse(tree, [])


class Crate:
    def __init__(self, name, root):
        self.name = name
        self.files = {}  # module path (tuple) -> file
        self.children = defaultdict(set)  # module path -> child names
        self.edges = defaultdict(list)  # (from, to) -> [evidence]
        self.load(root, ())

    def load(self, path, module):
        """Reads one file's module (and the inline and file modules it declares)."""
        try:
            with open(path, encoding="utf-8") as f:
                raw = f.read()
        except OSError:
            return
        self.files[module] = path
        text = strip(raw)
        self.scan(text, path, module)

    def child_file(self, path, module, name):
        """Where `mod name;` declared in `path` (module `module`) lives."""
        directory = os.path.dirname(path)
        base = os.path.basename(path)
        if base not in ("lib.rs", "main.rs", "mod.rs") and module:
            directory = os.path.join(directory, os.path.splitext(base)[0])
        elif base == "main.rs" and not module:
            pass
        for candidate in (os.path.join(directory, name + ".rs"), os.path.join(directory, name, "mod.rs")):
            if os.path.exists(candidate):
                return candidate
        return None

    def scan(self, text, path, module):
        # Inline modules: track `mod name {` by brace depth.
        stack = [(module, -1)]
        depth = 0
        pending = None  # inline module name awaiting its `{`
        uses = []  # (module, line, tree)
        paths = []  # (module, line, segments)
        token = re.compile(
            r"(?P<mod>\bmod\s+(?P<modname>" + IDENT + r")\s*(?P<modend>[;{]))"
            r"|(?P<use>\buse\s+(?P<tree>[^;]*);)"
            r"|(?P<path>(?<![A-Za-z0-9_:])(?:" + IDENT + r")(?:\s*::\s*(?:" + IDENT + r"))+)"
            r"|(?P<open>\{)|(?P<close>\})"
        )
        for m in token.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            current = stack[-1][0]
            if m.group("mod"):
                name = m.group("modname")
                self.children[current].add(name)
                if m.group("modend") == ";":
                    if current == module:
                        child = self.child_file(path, module, name)
                    else:  # `mod x;` inside an inline module: rare, look under its folder
                        child = None
                    if child:
                        self.load(child, current + (name,))
                else:
                    depth += 1
                    stack.append((current + (name,), depth))
            elif m.group("use"):
                for segments in expand_use(m.group("tree")):
                    uses.append((current, line, segments))
                depth += m.group("tree").count("{") - m.group("tree").count("}")
            elif m.group("path"):
                segments = [seg.strip() for seg in m.group("path").split("::")]
                paths.append((current, line, segments))
            elif m.group("open"):
                depth += 1
            elif m.group("close"):
                if stack[-1][1] == depth:
                    stack.pop()
                depth -= 1
        self.pending = getattr(self, "pending", []) + [(path, uses, paths)]

    def resolve(self, start, segments):
        """The deepest module a path reaches from `start`, or None when it leaves the crate."""
        if not segments:
            return None
        first = segments[0]
        if first == "crate":
            node, rest = (), segments[1:]
        elif first == "super":
            node, rest = start, segments
        elif first == "self":
            node, rest = start, segments[1:]
        elif first in self.children[start]:
            node, rest = start, segments
        else:
            return None
        for seg in rest:
            if seg == "super":
                if not node:
                    return None
                node = node[:-1]
            elif seg in self.children[node]:
                node = node + (seg,)
            else:
                break
        return node

    def build_edges(self):
        for path, uses, paths in self.pending:
            for module, line, segments in uses + paths:
                target = self.resolve(module, segments)
                if target is None or target == module:
                    continue
                # A module naming its own descendant through itself is still an edge
                # to that descendant; one naming an ancestor of itself is an edge up.
                self.edges[(module, target)].append(f"{path}:{line}: {'::'.join(segments)}")

    def cycles(self):
        graph = defaultdict(set)
        for (a, b) in self.edges:
            graph[a].add(b)
        index, low, on_stack, stack, sccs = {}, {}, set(), [], []
        counter = [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on_stack.add(v)
            for w in sorted(graph[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    sccs.append(sorted(scc))

        sys.setrecursionlimit(10000)
        for v in sorted(set(graph) | {b for bs in graph.values() for b in bs}):
            if v not in index:
                visit(v)
        return sccs


def name(module):
    return "crate" if not module else "crate::" + "::".join(module)


def main():
    args = sys.argv[1:]
    packages = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    excluded = [args[i + 1] for i, a in enumerate(args) if a == "--exclude"]
    show_graph = "--graph" in args
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1"], check=True, capture_output=True, text=True
        ).stdout
    )
    found = 0
    checked = 0
    for package in meta["packages"]:
        if packages and package["name"] not in packages or package["name"] in excluded:
            continue
        for target in package["targets"]:
            crate = Crate(f"{package['name']} ({'/'.join(target['kind'])} {target['name']})", target["src_path"])
            crate.build_edges()
            checked += 1
            if show_graph:
                print(f"== {crate.name}: {len(crate.files)} modules, {len(crate.edges)} edges")
                for (a, b) in sorted(crate.edges):
                    print(f"  {name(a)} -> {name(b)}")
            for scc in crate.cycles():
                found += 1
                print(f"cycle in {crate.name}: {', '.join(name(m) for m in scc)}")
                members = set(scc)
                for (a, b), evidence in sorted(crate.edges.items()):
                    if a in members and b in members:
                        print(f"  {name(a)} -> {name(b)}    ({evidence[0]}{' …' if len(evidence) > 1 else ''})")
    if found:
        print(f"{found} import cycle(s) in {checked} crate target(s)")
        return 1
    print(f"no import cycle between modules in {checked} crate target(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
