#!/usr/bin/env bash
# The Debian package, end to end (root: it installs into this machine, then purges):
#  build it from a copy of the tree (packaging/build-deb), check its Depends and contents,
#  lintian (errors and warnings fail; packaging/debian/aiowsgi.lintian-overrides justifies
#  the rest), `apt-get install ./aiowsgi_*.deb`, run the installed /usr/bin/aiowsgi-master
#  --version, serve the example app from /etc/aiowsgi/server.toml and get a 200, render
#  man aiowsgi-master and man aiowsgi.toml, verify the installed unit, purge and check that
#  nothing is left. The purge also runs when a step fails.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
# Exit 77 = skipped (CTest SKIP_RETURN_CODE): without root or the Debian tools this test
# cannot run at all, which is not a failure of the package.
if [ "$(id -u)" != 0 ]; then
  echo "test_deb: skipped: needs root (it apt-get installs the package)" >&2
  exit 77
fi
for tool in dpkg-buildpackage dpkg-deb lintian apt-get apt-cache systemd-analyze man; do
  command -v "$tool" >/dev/null ||
    { echo "test_deb: skipped: $tool not installed (bash .ci/deps)" >&2; exit 77; }
done
work=$(mktemp -d /tmp/aiowsgi-deb-test.XXXXXX)
server_pid=""
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL -- "-$server_pid" 2>/dev/null || kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if dpkg-query -W -f='${Status}' aiowsgi 2>/dev/null | grep -q installed; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 purge -y -qq aiowsgi \
      >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
# Another apt-get or dpkg on the machine holds the dpkg lock for a while: wait for it (up to
# 5 min) instead of failing the package.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

if dpkg-query -W -f='${Status}' aiowsgi 2>/dev/null | grep -q "install ok installed"; then
  fail "aiowsgi is already installed on this machine; this test would remove it"
fi

start=$SECONDS
if [ -n "${AIOWSGI_DEB:-}" ]; then
  # A .deb built earlier by packaging/build-deb (to rerun the checks without rebuilding).
  deb=$(readlink -f "$AIOWSGI_DEB")
  step "using $deb"
else
  step "build"
  "$src/packaging/build-deb" "$work" >/dev/null
  deb=$(ls "$work"/aiowsgi_*.deb)
  echo "built $(basename "$deb") in $((SECONDS - start)) s"
fi

step "control fields"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for dep in libpython3.11 libev4 libspdlog1 libfmt9 python3-greenlet \
           libpython3.11-stdlib python3 libc6 libstdc++6; do
  [[ ", $depends" == *", $dep"[\ .-]* || ", $depends," == *", $dep,"* ]] || fail "Depends lacks $dep"
done
# Every dependency must be a package the archive has, or a virtual package one provides
# (libspdlog1.10-fmt9 is provided by libspdlog1.10).
for dep in $(sed 's/([^)]*)//g; s/|/,/g; s/,/ /g' <<<"$depends"); do
  candidate=$(apt-cache policy "$dep" | sed -n 's/^ *Candidate: //p')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    providers=$(apt-cache showpkg "$dep" | sed -n '/^Reverse Provides:/,$p' | tail -n +2)
    [ -n "$providers" ] || fail "no installable package for $dep"
  fi
done
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/aiowsgi-master ./usr/bin/aiowsgi-top ./usr/share/man/man8/aiowsgi-master.8.gz \
         ./usr/share/man/man1/aiowsgi-top.1.gz \
         ./usr/share/man/man5/aiowsgi.toml.5.gz ./etc/aiowsgi/server.toml \
         ./lib/systemd/system/aiowsgi.service ./lib/systemd/system/aiowsgi.socket \
         ./usr/share/aiowsgi/examples/hello.py ./usr/share/doc/aiowsgi/copyright; do
  grep -qx "$f" <<<"$contents" || fail "package lacks $f"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | grep -qx /etc/aiowsgi/server.toml ||
  fail "/etc/aiowsgi/server.toml is not a conffile"

step "lintian"
# Shown with the overrides and their reasons, but judged without them: with --show-overrides
# lintian 2.116 counts an overridden warning towards --fail-on, so no override could ever
# justify one (the postinst's `systemctl kill`, for which debhelper has no helper, needs to).
lintian --display-info --show-overrides "$deb" || true
lintian --fail-on error,warning "$deb" >/dev/null || fail "lintian: errors or warnings (above)"

step "apt-get install"
apt_get install -y -qq --no-install-recommends "$deb" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get install"; }
[ "$(command -v aiowsgi-master)" = /usr/bin/aiowsgi-master ] || fail "aiowsgi-master not on PATH"
version=$(/usr/bin/aiowsgi-master --version)
echo "$version"
[ "$version" = "aiowsgi-master $(dpkg-query -W -f='${Version}' aiowsgi)" ] ||
  fail "version mismatch: $version"

/usr/bin/aiowsgi-top --help >/dev/null || fail "aiowsgi-top --help"

step "serve /etc/aiowsgi/server.toml"
/usr/bin/aiowsgi-master --check -c /etc/aiowsgi/server.toml
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The shipped config as is; --http only moves the listener to a free port (CI runs other
# servers), so a busy 8000 cannot fail the test.
setsid /usr/bin/aiowsgi-master -c /etc/aiowsgi/server.toml --http "127.0.0.1:$port" \
  >"$work/server.log" 2>&1 </dev/null &
server_pid=$!
python3 - "$port" <<'PY' || { cat "$work/server.log"; fail "no 200 from the installed server"; }
import sys, time, urllib.request
url = "http://127.0.0.1:%s/" % sys.argv[1]
deadline = time.monotonic() + 20
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            assert r.status == 200 and body == b"Hello World", (r.status, body)
            print("GET / ->", r.status, body.decode())
            break
    except OSError as e:
        if time.monotonic() > deadline:
            raise SystemExit("no answer: %r" % e)
        time.sleep(0.2)
PY
kill -TERM "$server_pid"
wait "$server_pid" || fail "the installed server did not exit 0 on SIGTERM"
server_pid=""

step "man pages"
for page in "8 aiowsgi-master" "5 aiowsgi.toml" "1 aiowsgi-top"; do
  set -- $page
  warnings=$(MANWIDTH=80 man --warnings "$1" "$2" 2>&1 >/dev/null)
  [ -z "$warnings" ] || fail "man $2: $warnings"
  MANWIDTH=80 man "$1" "$2" | grep -q "$2" || fail "man $2 does not render"
  echo "man $1 $2: $(MANWIDTH=80 man "$1" "$2" | wc -l) lines"
done

step "installed unit"
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no aiowsgi.service aiowsgi.socket 2>&1) ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
echo "aiowsgi.service and aiowsgi.socket verify"

step "purge"
apt_get purge -y -qq aiowsgi >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get purge"; }
for f in /usr/bin/aiowsgi-master /etc/aiowsgi /lib/systemd/system/aiowsgi.service \
         /usr/share/man/man8/aiowsgi-master.8.gz /usr/share/aiowsgi; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
echo "purged; total $((SECONDS - start)) s"
