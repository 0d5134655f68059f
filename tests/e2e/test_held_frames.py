"""Suspended requests whose Python frames are few (they stay in the core's own small frame
chunk) or many (they spill into regular chunks, freed or kept for reuse when the request
unwinds), all held at once and one after another on the same cores."""
import concurrent.futures
import json

import pytest

from conftest import APPS

UVLOOP = True


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(APPS / "held_frames_app.py", workers=1, cores=24)


def get(server, path, timeout=20):
    status, _, body = server.request("GET", path, timeout=timeout)
    return status, body.decode()


def test_shallow_and_deep_requests_held_at_once(server):
    depths = [0, 3, 60, 400] * 5  # 400 calls: more than one regular 16 KiB chunk of frames

    def one(n):
        return n, get(server, "/deep?n=%d&t=0.5" % n)

    with concurrent.futures.ThreadPoolExecutor(len(depths)) as pool:
        results = list(pool.map(one, depths))
    for n, (status, body) in results:
        assert status == 200, (n, status, body)
        assert int(body.split()[0]) == n
    assert len({body.split()[1] for _, (_, body) in results}) == len(depths), "one core each"


def test_deep_requests_one_after_another_reuse_the_cores(server):
    for i in range(60):
        n = (0, 80, 5, 300)[i % 4]
        status, body = get(server, "/deep?n=%d&t=0" % n)
        assert status == 200 and int(body.split()[0]) == n, (n, status, body)


def test_recursion_error_while_spilled_leaves_the_core_working(server):
    status, _ = get(server, "/deep?n=100000&t=0")
    assert status == 500
    for n in (0, 200):
        status, body = get(server, "/deep?n=%d&t=0.05" % n)
        assert status == 200 and int(body.split()[0]) == n


def test_core_greenlet_carries_its_id_without_an_instance_dict(server):
    status, body = get(server, "/greenlet")
    assert status == 200, body
    info = json.loads(body)
    assert info["core_id"] == info["environ_core"]
    assert info["is_greenlet"] is True
    assert info["is_core_greenlet"] is True  # the type apps can see as aiowsgi.CoreGreenlet
    assert info["custom"] == "apps may still set attributes"
    # The core id is a slot: nothing but what the app set itself is in the instance dict.
    assert info["dict"] == ["custom"]


@pytest.fixture(scope="module")
def harakiri(server_factory):
    return server_factory(APPS / "held_frames_app.py", workers=1, cores=4,
                          limits={"harakiri": 1})


def test_harakiri_unwinds_deep_held_requests_and_the_cores_serve_on(harakiri):
    depths = [0, 400, 900]  # 900 calls: frames over several regular chunks

    def one(n):
        return get(harakiri, "/deep?n=%d&t=30" % n, timeout=30)[0]

    with concurrent.futures.ThreadPoolExecutor(len(depths)) as pool:
        assert list(pool.map(one, depths)) == [504] * len(depths)
    for n in depths:
        status, body = get(harakiri, "/deep?n=%d&t=0.05" % n)
        assert status == 200 and int(body.split()[0]) == n, (n, status, body)
