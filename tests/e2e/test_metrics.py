"""[stats] metrics: Prometheus text at GET /metrics, parsed with prometheus_client's own
parser; the counters agree with the traffic sent."""
import time
import os
import signal
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from obs_helpers import StatsServer, wait_for


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = StatsServer(tmp_path_factory.mktemp("metrics"), workers=2, cores=4, stats=None).start()
    yield s
    s.stop()


def scrape(srv):
    status, ctype, text = srv.metrics_text()
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    samples = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return families, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metric_names_and_types(srv):
    families, _ = scrape(srv)
    expected = {"aiowsgi_requests": "counter", "aiowsgi_exceptions": "counter",
                "aiowsgi_request_duration_seconds": "histogram",
                "aiowsgi_requests_in_flight": "gauge", "aiowsgi_cores_busy": "gauge",
                "aiowsgi_listen_queue": "gauge", "aiowsgi_worker_respawns": "counter",
                "aiowsgi_reloads": "counter", "aiowsgi_worker_rss_bytes": "gauge",
                "aiowsgi_response_bytes": "counter"}
    for name, typ in expected.items():
        assert name in families, "missing %s in %s" % (name, sorted(families))
        assert families[name].type == typ, name
    for name in families:
        assert name.startswith("aiowsgi_")


def settled_scrape(srv):
    """A scrape once the figures stop moving: a worker records a request just after its
    response went out, so the readiness probe's may still be on its way."""
    _, samples = scrape(srv)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        _, again = scrape(srv)
        if all(again.get(k) == v for k, v in samples.items()
               if k[0].startswith("aiowsgi_request")):
            return again
        samples = again
    return samples


def test_counters_agree_with_the_traffic(srv):
    before = settled_scrape(srv)
    for _ in range(7):
        assert srv.request("GET", "/")[0] == 200
    for _ in range(3):
        assert srv.request("GET", "/status/404")[0] == 404
    assert srv.request("GET", "/boom")[0] == 500
    assert srv.request("GET", "/status/302")[0] == 302
    # A worker records a request just after its response went out: the client may scrape
    # first. SPEC: figures are at most one second old.
    _, after = scrape(srv)
    deadline = time.monotonic() + 2.0
    while (value(after, "aiowsgi_request_duration_seconds_count")
           - value(before, "aiowsgi_request_duration_seconds_count") < 12
           and time.monotonic() < deadline):
        time.sleep(0.05)
        _, after = scrape(srv)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("aiowsgi_requests_total", status="2xx") == 7
    assert delta("aiowsgi_requests_total", status="4xx") == 3
    assert delta("aiowsgi_requests_total", status="5xx") == 1
    assert delta("aiowsgi_requests_total", status="3xx") == 1
    assert delta("aiowsgi_exceptions_total") == 1
    assert delta("aiowsgi_request_duration_seconds_count") == 12
    assert delta("aiowsgi_request_duration_seconds_bucket", le="+Inf") == 12
    assert delta("aiowsgi_request_duration_seconds_sum") > 0
    assert delta("aiowsgi_response_bytes_total") > 12 * 50
    rss = [v for (name, labels), v in after.items() if name == "aiowsgi_worker_rss_bytes"]
    assert len(rss) == 2 and all(v > 1 << 20 for v in rss)


def test_in_flight_and_busy_cores(srv):
    from obs_helpers import background_requests
    threads = background_requests(srv, "/slow?s=2", 3)
    got = wait_for(lambda: value(scrape(srv)[1], "aiowsgi_requests_in_flight") == 3, timeout=3,
                   interval=0.05)
    assert got
    _, samples = scrape(srv)
    busy = sum(v for (name, _), v in samples.items() if name == "aiowsgi_cores_busy")
    assert busy == 3
    for t in threads:
        t.join()


def test_respawns_and_reloads_count_and_counters_survive_them(srv):
    _, before = scrape(srv)
    victim = [p for p in srv.group_pids() if p != srv.pid][0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: value(scrape(srv)[1], "aiowsgi_worker_respawns_total") >
                    value(before, "aiowsgi_worker_respawns_total"), timeout=10)
    os.kill(srv.pid, signal.SIGHUP)
    assert wait_for(lambda: value(scrape(srv)[1], "aiowsgi_reloads_total") ==
                    value(before, "aiowsgi_reloads_total") + 1, timeout=10)
    srv.wait_log("reload complete", timeout=10)
    _, after = scrape(srv)
    # Requests counted by the processes that were replaced are still in the totals.
    assert value(after, "aiowsgi_requests_total", status="2xx") >= \
        value(before, "aiowsgi_requests_total", status="2xx")


def test_other_paths_are_404(srv):
    with pytest.raises(urllib.error.HTTPError) as e:
        srv.metrics_text("/")
    assert e.value.code == 404
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % srv.metrics_port, method="POST",
                                 data=b"x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405
