#!/usr/bin/env python3
"""Lints the Python files given on the command line (the worker's embedded module halves).

With pyflakes installed (Debian: python3-pyflakes) every warning fails the check; without it
each file must at least compile. Writes no bytecode next to the sources.
"""
import sys


def main(paths):
    if not paths:
        print("lint_python.py: no files given", file=sys.stderr)
        return 2
    try:
        from pyflakes import api, reporter
    except ImportError:
        print("pyflakes is not installed: checking that the files compile only")
        failed = 0
        for path in paths:
            with open(path, "rb") as f:
                source = f.read()
            try:
                compile(source, path, "exec", dont_inherit=True)
            except SyntaxError as e:
                print("%s:%s: %s" % (path, e.lineno, e.msg), file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    warnings = sum(api.checkPath(path, reporter._makeDefaultReporter()) for path in paths)
    print("%d file(s), %d pyflakes warning(s)" % (len(paths), warnings))
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
