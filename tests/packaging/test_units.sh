#!/usr/bin/env bash
# The shipped systemd units pass `systemd-analyze verify` without a single complaint (it
# exits 0 on unknown keys, so any output fails the test), with ExecStart pointing at the
# built binary. Also prints the offline security exposure score of the service.
#   tests/packaging/test_units.sh PATH/TO/aiowsgi-master
set -euo pipefail
# Exit 77 = skipped (CTest SKIP_RETURN_CODE) when systemd-analyze is not installed.
command -v systemd-analyze >/dev/null ||
  { echo "test_units: skipped: systemd-analyze not installed (bash .ci/deps)" >&2; exit 77; }
master=$(readlink -f "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/aiowsgi-units.XXXXXX)
trap 'rm -rf "$dir"' EXIT

for u in aiowsgi.service aiowsgi.socket; do
  sed "s|/usr/bin/aiowsgi-master|$master|g" "$src/packaging/systemd/$u" >"$dir/$u"
done
cd "$dir"
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./aiowsgi.socket ./aiowsgi.service 2>&1)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained:"
  echo "$out"
  exit 1
fi
grep -qx 'Type=notify' aiowsgi.service
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' aiowsgi.service
grep -qx 'KillSignal=SIGTERM' aiowsgi.service
echo "units verified"
systemd-analyze security --offline=true --no-pager ./aiowsgi.service 2>/dev/null | tail -n 1
