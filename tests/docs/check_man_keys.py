#!/usr/bin/env python3
"""Checks that the config keys the loader accepts and the keys the docs describe agree.

Sources, each reduced to a set of "[table] key" names (plus "[table]" for each table):
  code     config/config.cpp: the table dispatch map ({"server", &FileLoader::server}, ...)
           and, in each table's reader, the comparisons `k == "workers"`.
  man      man/aiowsgi.toml.5: each `.TP` entry under a `.SH "[table] TABLE"` section.
  example  man/aiowsgi.toml.5: the first example file under EXAMPLES (it claims every key).
  spec     SPEC.md: the ```toml block of the "server.toml" section.

Exits 0 when all sets are equal, 1 listing every key missing from a source, 2 when a
source cannot be read or yields no keys (the extractor then needs adapting, not silence).
Standard library only.

usage: check_man_keys.py [--root REPO] [--spec SPEC.md] [--print]
"""

import argparse
import os
import re
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


# ---- C++ -------------------------------------------------------------------------------------

def strip_cpp_comments(src):
    """Blanks out // and /* */ comments, keeping string and char literals and line count."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith('R"', i):
            m = re.match(r'R"([^(\s]*)\(', src[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = src.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            # Raw strings (usage text) hold prose, never key names: blank them.
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def block_after(src, pos):
    """The text between the first '{' at or after pos and its matching '}'."""
    start = src.find("{", pos)
    if start < 0:
        return ""
    depth = 0
    i = start
    while i < len(src):
        c = src[i]
        if c in "\"'":
            j = i + 1
            while j < len(src) and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return src[start + 1:i]
        i += 1
    return src[start + 1:]


def code_keys(path):
    src = strip_cpp_comments(read(path))
    keys = set()

    # Layout 1 (config.cpp today): {"server", &FileLoader::server} dispatches a table to a
    # member function, which compares each key: `if (k == "listen") ... else if (k == ...)`.
    dispatch = re.findall(r'\{\s*"(' + IDENT + r')"\s*,\s*&\s*(?:\w+::)*(' + IDENT + r')\s*\}', src)
    for table, method in dispatch:
        keys.add(f"[{table}]")
        m = re.search(r"\b(?:void|bool|Status)\s+" + re.escape(method) +
                      r"\s*\(\s*const\s+toml::table\s*&", src)
        if not m:
            raise SourceError(f"{path}: no reader function {method}() for table [{table}]")
        body = block_after(src, m.end())
        found = set(re.findall(r'\b' + IDENT + r'\s*==\s*"(' + IDENT + r')"', body))
        found |= set(re.findall(r'"(' + IDENT + r')"\s*==\s*' + IDENT + r'\b', body))
        if not found:
            raise SourceError(f"{path}: found no `key == \"name\"` in {method}() for [{table}]")
        keys |= {f"[{table}] {k}" for k in found}

    # Layout 2: a table of accepted keys, {"server", {"listen", "workers", ...}}.
    if not dispatch:
        for table, inner in re.findall(r'\{\s*"(' + IDENT + r')"\s*,\s*\{([^{}]*)\}\s*\}', src):
            names = re.findall(r'"(' + IDENT + r')"', inner)
            if names:
                keys.add(f"[{table}]")
                keys |= {f"[{table}] {k}" for k in names}

    # Layout 3: literal pairs or dotted names, {"server", "workers"} or "server.workers".
    if not keys:
        for table, key in re.findall(r'\{\s*"(' + IDENT + r')"\s*,\s*"(' + IDENT + r')"\s*\}', src):
            keys |= {f"[{table}]", f"[{table}] {key}"}

    if not keys:
        raise SourceError(f"{path}: no config keys found; adapt code_keys() to the loader's layout")
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
    text = read(path)
    m = re.search(r"^#+\s*server\.toml\s*$.*?^```toml\s*$(.*?)^```\s*$", text, re.S | re.M)
    if not m:
        raise SourceError(f"{path}: no ```toml block under a 'server.toml' heading")
    keys = toml_keys(m.group(1))
    if not keys:
        raise SourceError(f"{path}: the server.toml block has no keys")
    return keys


def spec_additions(path):
    """'[table] key  reason...' lines ('[table]' counts too); '#' starts a comment."""
    keys = set()
    if not os.path.isfile(path):
        return keys
    for line in read(path).splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^((\[\w+\])\s+\w+)", line)
        if m:
            keys.add(re.sub(r"\s+", " ", m.group(1)))
            keys.add(m.group(2))  # a key added in a new table adds the table too
    return keys


# ---- main --------------------------------------------------------------------------------------

def find_spec(root):
    for cand in (os.path.join(root, "SPEC.md"), os.path.join(root, "docs", "SPEC.md"),
                 os.path.join(os.path.dirname(root), "shared", "SPEC.md")):
        if os.path.isfile(cand):
            return cand
    raise SourceError(f"SPEC.md not found under {root} or {root}/docs or ../shared; "
                      "pass --spec PATH")


def sort_key(k):
    table, _, key = k.partition(" ")
    return (table, key)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")),
                    help="repository root (default: two folders above this script)")
    ap.add_argument("--spec", help="SPEC.md (default: ROOT/SPEC.md, ROOT/docs/SPEC.md, "
                                   "ROOT/../shared/SPEC.md)")
    ap.add_argument("--print", action="store_true", help="print every source's keys")
    args = ap.parse_args(argv)

    man = os.path.join(args.root, "man", "aiowsgi.toml.5")
    try:
        spec = args.spec or find_spec(args.root)
        sources = {
            "config/config.cpp": code_keys(os.path.join(args.root, "config", "config.cpp")),
            "man/aiowsgi.toml.5": man_keys(man),
            "man/aiowsgi.toml.5 EXAMPLES": man_example_keys(man),
            spec: spec_keys(spec),
        }
    except SourceError as e:
        print(f"check_man_keys: {e}", file=sys.stderr)
        return 2
    # Keys the project added to the contract on purpose, beyond SPEC.md (each with its reason
    # in the file): SPEC.md is shared and read-only here, so the additions are recorded beside
    # this script and count as the spec's.
    additions = spec_additions(os.path.join(here, "spec_additions.txt"))
    sources[spec] = sources[spec] | additions

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
