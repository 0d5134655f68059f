#!/usr/bin/env bash
# The RPM: build it with rpmbuild from packaging/rpm/aiowsgi.spec (Debian's rpm package;
# --nodeps because the build dependencies are Debian packages), then check its file list
# (rpm -qpl), its requirements (rpm -qpR: the ELF sonames rpm found, python3-greenlet) and
# that /etc/aiowsgi/server.toml is a noreplace config file.
set -euo pipefail
# Exit 77 = skipped (CTest SKIP_RETURN_CODE) when rpm's tools are not installed.
for tool in rpmbuild rpm; do
  command -v "$tool" >/dev/null ||
    { echo "test_rpm: skipped: $tool not installed (bash .ci/deps)" >&2; exit 77; }
done
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/aiowsgi-rpm-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

start=$SECONDS
if [ -n "${AIOWSGI_RPM:-}" ]; then
  rpm=$(readlink -f "$AIOWSGI_RPM")  # built earlier by packaging/build-rpm
  echo "using $rpm"
else
  RPMBUILD_NODEPS=1 "$src/packaging/build-rpm" "$work" >/dev/null
  rpm=$(ls "$work"/aiowsgi-[0-9]*.rpm | grep -v debug)
  echo "built $(basename "$rpm") in $((SECONDS - start)) s"
fi

files=$(rpm -qpl "$rpm")
echo "$files"
for f in /usr/bin/aiowsgi-master /usr/bin/aiowsgi-top /usr/share/man/man8/aiowsgi-master.8 \
         /usr/share/man/man1/aiowsgi-top.1 \
         /usr/share/man/man5/aiowsgi.toml.5 /etc/aiowsgi/server.toml \
         /usr/lib/systemd/system/aiowsgi.service /usr/lib/systemd/system/aiowsgi.socket \
         /usr/share/aiowsgi/examples/hello.py /usr/share/doc/aiowsgi/README.md; do
  # Man pages may be compressed by the build host's brp scripts.
  grep -Eqx "$f(\.gz|\.bz2|\.xz|\.zst)?" <<<"$files" || fail "rpm lacks $f"
done
grep -q '/build' <<<"$files" && fail "rpm contains build paths"

requires=$(rpm -qpR "$rpm")
echo "$requires"
for r in 'python3-greenlet >= 2.0' 'libev\.so\.4\(\)\(64bit\)' 'libpython3\.11\.so\.1\.0\(\)\(64bit\)' \
         'libspdlog\.so\.1\.[0-9]+\(\)\(64bit\)' 'libfmt\.so\.[0-9]+\(\)\(64bit\)' \
         'libstdc\+\+\.so\.6\(\)\(64bit\)'; do
  grep -Eqx "$r" <<<"$requires" || fail "rpm does not require $r"
done

configs=$(rpm -qpc "$rpm")
[ "$configs" = /etc/aiowsgi/server.toml ] || fail "config files: $configs"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep -qx 'cn /etc/aiowsgi/server.toml' ||
  fail "/etc/aiowsgi/server.toml is not %config(noreplace)"
echo "rpm checks passed in $((SECONDS - start)) s"
