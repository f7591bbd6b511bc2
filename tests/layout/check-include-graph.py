#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The layers as the #include lines draw them (lib/meson.build names the layers).

  check-include-graph.py SOURCE_ROOT

Fails, naming the file and the line, when:
  - a file in lib/<layer>/ includes a project header of a layer above its own, or one from daemon/
    or cli/ (lib/ knows nothing of its users);
  - a project header includes one that cannot be found (a stale path after a move);
  - the headers include each other in a circle (daemon/, cli/ and lib/ together);
  - daemon/'s core (sealvold-core.c and .h) includes a daemon header other than its own: the core
    calls nothing above it (the operations, the bus, the unlock pass) and reports through hooks;
  - a file other than the bus files (daemon/*-bus.c) includes daemon/sealvold-bus.h;
  - cli/ includes a daemon header (the CLI knows the daemon through the bus and lib/shared/ only).
"""
import os
import re
import sys

LAYERS = ["basic", "crypto", "tpm", "luks", "escrow", "shared"]
GENERATED = {"build-config.h"}
CORE = "sealvold-core"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def project_headers(root):
    where = {}
    for top in ["lib", "daemon", "cli"]:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith(".h"):
                    where.setdefault(n, []).append(os.path.relpath(os.path.join(dirpath, n), root))
    return where


def includes(path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield number, m.group(1)


def layer_of(rel):
    parts = rel.split(os.sep)
    if parts[0] == "lib" and len(parts) == 3 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def main():
    root = sys.argv[1]
    headers = project_headers(root)
    errors = []
    graph = {}
    for name, paths in headers.items():
        if len(paths) > 1:
            errors.append(f"{name}: more than one header of this name: {', '.join(paths)}")

    sources = []
    for top in ["lib", "daemon", "cli"]:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            sources += [os.path.relpath(os.path.join(dirpath, n), root) for n in names if n.endswith((".c", ".h"))]
    for rel in sorted(sources):
        if rel.startswith("lib" + os.sep) and layer_of(rel) is None:
            errors.append(f"{rel}: not in a layer folder of lib/ ({', '.join(LAYERS)})")
            continue
        mine = layer_of(rel)
        for number, inc in includes(os.path.join(root, rel)):
            if inc in GENERATED:
                continue
            found = headers.get(inc)
            if not found:
                errors.append(f"{rel}:{number}: #include \"{inc}\": no such project header")
                continue
            target = found[0]
            if rel.endswith(".h"):
                graph.setdefault(rel, set()).add(target)
            if target.startswith("daemon" + os.sep):
                name = os.path.basename(rel)
                if rel.startswith("cli" + os.sep):
                    errors.append(f"{rel}:{number}: cli/ includes {target}: the CLI knows the daemon through the "
                                  f"bus and lib/shared/ only")
                if name.startswith(CORE) and target != os.path.join("daemon", CORE + ".h"):
                    errors.append(f"{rel}:{number}: the daemon's core includes {target}, a layer above it "
                                  f"(report through ManagerHooks instead)")
                if target == os.path.join("daemon", "sealvold-bus.h") and not name.endswith("-bus.c"):
                    errors.append(f"{rel}:{number}: includes {target}, which only the bus files (*-bus.c) see")
            if mine is None:
                continue
            theirs = layer_of(target)
            if theirs is None:
                errors.append(f"{rel}:{number}: lib/ includes {target}: lib/ knows nothing of its users")
            elif theirs > mine:
                errors.append(f"{rel}:{number}: {LAYERS[mine]}/ includes {target}, a layer above it "
                              f"({LAYERS[theirs]}/)")

    # A circle among the headers: depth-first, each one reported once.
    state, stack = {}, []

    def visit(h):
        state[h] = 1
        stack.append(h)
        for n in sorted(graph.get(h, ())):
            if state.get(n) == 1:
                errors.append("include circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[h] = 2

    for h in sorted(graph):
        if h not in state:
            visit(h)

    for e in errors:
        print(e, file=sys.stderr)
    n = sum(len(v) for v in graph.values())
    print(f"{len(sources)} files, {len(graph)} headers including {n} others: "
          f"{'ok' if not errors else str(len(errors)) + ' problems'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
