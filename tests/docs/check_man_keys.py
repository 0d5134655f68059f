#!/usr/bin/env python3
"""Checks that the config keys the server accepts and the keys the docs describe agree.

Sources, each reduced to a set of "[table] key" names (plus "[table]" for each table):
  binary   `aiowsgi-master --print-keys`: the key table (config/keys.cpp) that drives the
           loader, the flags and --help; the source of truth.
  man      man/aiowsgi.toml.5: each `.TP` entry under a `.SH "[table] TABLE"` section.
  example  man/aiowsgi.toml.5: the first example file under EXAMPLES (it claims every key).
  contract tests/docs/spec_keys.txt: the contract's server.toml keys, kept in the repository.
           A key marked "pending" (being added) is only noted while the binary lacks it;
           once the binary accepts it, it must be documented like any other.

Exits 0 when all sets are equal, 1 listing every key missing from a source (in both
directions), 2 when a source cannot be read or yields no keys (the extractor then needs
adapting, not silence). Reads nothing outside the repository but the binary it is given.
Standard library only.

usage: check_man_keys.py --binary aiowsgi-master [--root REPO] [--print]
"""

import argparse
import os
import re
import subprocess
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


class SourceError(Exception):
    pass


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from e


# ---- the binary ------------------------------------------------------------------------------

def binary_keys(binary):
    """`aiowsgi-master --print-keys`: the key table, one "[table] key" per line."""
    try:
        out = subprocess.run([binary, "--print-keys"], capture_output=True, text=True,
                             timeout=60, check=False)
    except OSError as e:
        raise SourceError(f"{binary}: {e.strerror}") from e
    if out.returncode != 0:
        raise SourceError(f"{binary} --print-keys exited {out.returncode}: {out.stderr.strip()}")
    keys = set()
    for n, line in enumerate(out.stdout.splitlines(), 1):
        m = re.fullmatch(r"\[(" + IDENT + r")\] (" + IDENT + r")", line)
        if not m:
            raise SourceError(f"{binary} --print-keys: line {n} is not '[table] key': {line}")
        keys |= {f"[{m.group(1)}]", f"[{m.group(1)}] {m.group(2)}"}
    if not keys:
        raise SourceError(f"{binary} --print-keys printed no keys")
    return keys


# ---- roff --------------------------------------------------------------------------------------

ROFF_CHARS = {r"\(dq": '"', r"\(aq": "'", r"\(rs": "\\", r"\e": "\\", r"\-": "-", r"\&": "",
              r"\ ": " ", r"\~": " ", r"\%": ""}


def unroff(text):
    text = re.sub(r"\\f(?:\[[^\]]*\]|\(..|.)", "", text)  # font changes
    for esc, plain in ROFF_CHARS.items():
        text = text.replace(esc, plain)
    return text


def macro_words(line):
    """The arguments of a roff macro line, with quotes and escapes removed."""
    args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', line.split(None, 1)[1] if " " in line else "")
    return [unroff(q or w) for q, w in args]


def man_keys(path):
    lines = read(path).splitlines()
    keys = set()
    table = None
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            m = re.match(r'\.SH\s+"?\[(' + IDENT + r')\]\s+TABLE"?\s*$', line)
            table = m.group(1) if m else None
            if table:
                keys.add(f"[{table}]")
        elif table and line.startswith(".TP") and i + 1 < len(lines):
            tag = lines[i + 1]
            words = macro_words(tag) if tag.startswith(".") else unroff(tag).split()
            if not words or not re.fullmatch(IDENT, words[0]):
                raise SourceError(f"{path}:{i + 2}: a .TP entry in [{table}] does not start "
                                  f"with a key name: {tag}")
            keys.add(f"[{table}] {words[0]}")
    if not keys:
        raise SourceError(f"{path}: no '.SH \"[table] TABLE\"' sections found")
    return keys


def toml_keys(text):
    """Tables and top-level keys of a simple TOML text (one key per line, as in the docs)."""
    keys = set()
    table = None
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"\[(" + IDENT + r")\]\s*(#.*)?$", line)
        if m:
            table = m.group(1)
            keys.add(f"[{table}]")
            continue
        m = re.match(r"(" + IDENT + r")\s*=", line)
        if m and table:
            keys.add(f"[{table}] {m.group(1)}")
    return keys


def man_example_keys(path):
    text = read(path)
    m = re.search(r"^\.SH\s+EXAMPLES\s*$(.*?)^\.EX\s*$(.*?)^\.EE\s*$", text, re.S | re.M)
    if not m:
        raise SourceError(f"{path}: no .EX example under .SH EXAMPLES")
    keys = toml_keys(unroff(m.group(2)))
    if not keys:
        raise SourceError(f"{path}: the first example under EXAMPLES has no keys")
    return keys


def spec_keys(path):
    """'[table] key' (or '[table]') lines, with an optional trailing 'pending'; '#' starts a
    comment. Returns (required, pending) sets."""
    required, pending = set(), set()
    for n, line in enumerate(read(path).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[(" + IDENT + r")\](?:\s+(?!pending$)(" + IDENT + r"))?(\s+pending)?",
                         line)
        if not m:
            raise SourceError(f"{path}:{n}: expected '[table] key' or '[table]' "
                              f"with an optional 'pending': {line}")
        key = f"[{m.group(1)}]" + (f" {m.group(2)}" if m.group(2) else "")
        (pending if m.group(3) else required).add(key)
    if not required:
        raise SourceError(f"{path}: no keys")
    return required, pending


# ---- main --------------------------------------------------------------------------------------

def sort_key(k):
    table, _, key = k.partition(" ")
    return (table, key)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")),
                    help="repository root (default: two folders above this script)")
    ap.add_argument("--binary", required=True, help="the built aiowsgi-master")
    ap.add_argument("--print", action="store_true", help="print every source's keys")
    args = ap.parse_args(argv)

    man = os.path.join(args.root, "man", "aiowsgi.toml.5")
    try:
        sources = {
            "aiowsgi-master --print-keys": binary_keys(args.binary),
            "man/aiowsgi.toml.5": man_keys(man),
            "man/aiowsgi.toml.5 EXAMPLES": man_example_keys(man),
        }
        required, pending = spec_keys(os.path.join(here, "spec_keys.txt"))
    except SourceError as e:
        print(f"check_man_keys: {e}", file=sys.stderr)
        return 2
    implemented = sources["aiowsgi-master --print-keys"]
    # The contract as of today: its keys, plus the pending ones the binary already accepts.
    sources["tests/docs/spec_keys.txt"] = required | (pending & implemented)
    for k in sorted(pending - implemented, key=sort_key):
        print(f"check_man_keys: note: {k} is being added (pending in spec_keys.txt); "
              "the binary does not accept it yet")

    everything = set().union(*sources.values())
    if args.print:
        for name, keys in sources.items():
            print(f"{name}: {len(keys)}")
            for k in sorted(keys, key=sort_key):
                print(f"  {k}")

    missing = {name: everything - keys for name, keys in sources.items()}
    if not any(missing.values()):
        print(f"check_man_keys: {len(everything)} tables and keys agree across "
              f"{', '.join(sources)}")
        return 0
    for name, keys in missing.items():
        for k in sorted(keys, key=sort_key):
            has = [other for other, ks in sources.items() if k in ks]
            print(f"{name}: missing {k} (found in {', '.join(has)})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
