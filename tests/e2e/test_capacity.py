"""The master says at start where the kernel's limits cut the configured concurrency
(aiowsgi.toml(5), [limits] max_connections): a worker holds one descriptor per connection
within the RLIMIT_NOFILE it inherits, and each listen queue is capped by net.core.somaxconn.
The master raises its soft open-file limit towards what the configuration needs, never past
the hard limit, and names the figure that will actually cap it.
"""
import resource
from pathlib import Path

import pytest

from conftest import APPS, BACKEND, Server

pytestmark = pytest.mark.skipif(BACKEND.startswith("uwsgi"), reason="aiowsgi's start-up log")

APP = APPS / "rlimit_app.py"
RESERVED = 64  # master/capacity.h kWorkerReservedFds


def limited(soft, hard):
    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return preexec


def start(tmp_path, soft, hard, **kwargs):
    s = Server(tmp_path, APP, **kwargs)
    s.preexec_fn = limited(soft, hard)
    return s.start()


def worker_limits(server):
    status, _, body = server.request("GET", "/")
    assert status == 200
    return tuple(int(x) for x in body.split())


def test_max_connections_past_the_hard_limit_is_named_with_the_real_cap(tmp_path):
    s = start(tmp_path, 512, 512, cores=20, limits={"max_connections": 2000})
    try:
        cap = 512 - RESERVED - 1
        text = s.wait_log("max_connections = 2000 exceeds")
        assert "max_connections = 2000 exceeds" in text, text
        assert "at most %d connections" % cap in text, text
        assert worker_limits(s) == (512, 512)  # nothing to raise: still serving
    finally:
        s.stop()


def test_cores_past_the_limit_are_named_too(tmp_path):
    s = start(tmp_path, 400, 400, cores=1000, limits={"max_connections": 1000})
    try:
        needle = "[server] cores = 1000: at most %d requests" % (400 - RESERVED - 1)
        assert needle in s.wait_log(needle)
    finally:
        s.stop()


def test_the_soft_limit_is_raised_to_what_the_configuration_needs(tmp_path):
    s = start(tmp_path, 256, 4096, cores=20, limits={"max_connections": 1000})
    try:
        need = 1000 + RESERVED + 1
        needle = "open-file limit raised from 256 to %d" % need
        assert needle in s.wait_log(needle)
        assert worker_limits(s) == (need, 4096)
        assert "exceeds what the open-file limit" not in s.log_text()
    finally:
        s.stop()


def test_a_fitting_configuration_says_nothing(tmp_path):
    s = start(tmp_path, 4096, 4096, cores=20, limits={"max_connections": 1000})
    try:
        assert worker_limits(s) == (4096, 4096)
        text = s.log_text()
        assert "exceeds" not in text and "raised" not in text, text
    finally:
        s.stop()


def test_backlog_past_somaxconn_names_somaxconn(tmp_path):
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    backlog = min(somaxconn + 1000, 65535)
    if backlog <= somaxconn:
        pytest.skip("somaxconn is already at the largest backlog aiowsgi accepts")
    s = start(tmp_path, 4096, 4096, cores=20, server={"backlog": backlog})
    try:
        needle = "backlog = %d exceeds net.core.somaxconn = %d" % (backlog, somaxconn)
        assert needle in s.wait_log(needle)
    finally:
        s.stop()
