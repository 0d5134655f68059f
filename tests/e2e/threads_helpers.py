"""Helpers for the tests of per-core thread identity (test_threads_*.py): JSON requests to the
apps built on tests/apps/core_sync.py, requests sent at once, and the hold/release handshake."""
import concurrent.futures
import itertools
import json
import os

from conftest import wait_for

_groups = itertools.count()


def group_name(prefix="g"):
    """A barrier group or hold key no other request of this server used."""
    return "%s-%d-%d" % (prefix, os.getpid(), next(_groups))


def get_json(server, path, timeout=20):
    """The JSON a path answers; fails with the app's error text on any other status."""
    status, _, body = server.request("GET", path, timeout=timeout)
    assert status == 200, "%s: status %d: %s" % (path, status, body.decode(errors="replace"))
    return json.loads(body)


def concurrently(server, paths, timeout=30):
    """get_json of every path, all sent at once; the results in the order of `paths`."""
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda p: get_json(server, p, timeout), paths))


def start_request(pool, server, path, timeout=30):
    """get_json(path) in the background: a Future of its JSON."""
    return pool.submit(get_json, server, path, timeout)


def wait_phase(server, key, value, pending, timeout=15):
    """Waits until the app reports `value` as the phase of `key` (the held request reached its
    point) or the pending request ended early; then fails showing what that request answered."""
    reached = wait_for(lambda: pending.done() or get_json(server, "/phase?key=" + key) == value,
                       timeout)
    if pending.done():
        raise AssertionError("the request ended before reaching %r: %r"
                             % (value, pending.result()))
    assert reached, "the request never reached %r (phase %r)" % (
        value, get_json(server, "/phase?key=" + key))


def release(server, key):
    assert get_json(server, "/release?key=" + key) == "released"
