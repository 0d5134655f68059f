#!/usr/bin/env python3
"""Fails on an #include that the design forbids (see README "Layout").

The layers, bottom up: common -> config -> worker/protocol -> worker/python (the Python
embedding, which sees the running request only through worker/python/request_host.h) ->
worker (the engine, whose Core implements that interface); common -> config -> master.
The master never includes the worker (only master/main.cpp wires the two);
worker/protocol/ includes only common/ and itself; worker/python/ includes only common/,
config/, worker/protocol/ and itself; nothing but the worker engine and its Python
embedding includes Python or greenlet headers; product code never includes test code (unit
tests beside the code, *_test.cpp, may use the tests/unit/ helpers).

Usage: check_layers.py [--root DIR]. Exit 1 with one line per forbidden edge,
"file:line: includes X: reason".
"""
import argparse
import pathlib
import re
import sys

PRODUCT = ("common", "config", "worker", "master")
PYTHON_HEADERS = ("Python.h", "greenlet.h", "greenlet/greenlet.h", "worker/python/")

# (includer prefix, what it may include from the project). The first matching prefix wins,
# so the more specific ones come first.
ALLOWED = [
    ("master/main.cpp", ("common/", "config/", "master/", "worker/")),
    ("master/", ("common/", "config/", "master/")),
    ("worker/protocol/", ("common/", "worker/protocol/")),
    ("worker/python/", ("common/", "config/", "worker/protocol/", "worker/python/")),
    ("worker/", ("common/", "config/", "worker/")),
    ("config/", ("common/", "config/")),
    ("common/", ("common/",)),
]
# Layers that must stay free of the interpreter: they are linked into tools and tests that do
# not load libpython.
NO_PYTHON = ("common/", "config/", "master/", "worker/protocol/")

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path):
    for prefix, _ in ALLOWED:
        if path.startswith(prefix):
            return prefix
    return path.split("/")[0] + "/"


def rule_for(path):
    for prefix, allowed in ALLOWED:
        if path.startswith(prefix):
            return allowed
    return None


def check(root):
    errors = []
    for top in PRODUCT:
        for f in sorted((root / top).rglob("*")):
            if f.suffix not in (".h", ".cpp") or not f.is_file():
                continue
            rel = f.relative_to(root).as_posix()
            allowed = rule_for(rel)
            for lineno, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                kind, target = m.groups()
                if rel.startswith(NO_PYTHON) and (
                        target in PYTHON_HEADERS or target.startswith("worker/python/")):
                    errors.append(f"{rel}:{lineno}: includes {target}: this layer must not "
                                  "depend on the Python interpreter")
                    continue
                if kind != '"':
                    continue
                if target.startswith("tests/"):
                    if not (rel.endswith("_test.cpp") and target.startswith("tests/unit/")):
                        errors.append(f"{rel}:{lineno}: includes {target}: product code never "
                                      "includes test code (unit tests: tests/unit/ only)")
                    continue
                if not target.startswith(tuple(p + "/" for p in PRODUCT)):
                    continue  # a library's own header, e.g. "http_parser.h"
                if allowed is not None and not target.startswith(allowed):
                    errors.append(f"{rel}:{lineno}: includes {target}: {layer_of(rel)}"
                                  f" may include only {', '.join(allowed)}")
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=pathlib.Path(__file__).resolve().parents[2])
    args = ap.parse_args()
    errors = check(pathlib.Path(args.root))
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} forbidden include(s)")
        return 1
    print("layers: no forbidden include")
    return 0


if __name__ == "__main__":
    sys.exit(main())
