"""examples/kubernetes/aiowsgi.yaml is real: its ConfigMap's server.toml runs (addresses moved
to free loopback ports, the app swapped for hello.py), its readiness probe command passes
against that server and fails without one, and its liveness path answers on the metrics
port."""
import http.client
import os
import signal
import subprocess
import sys
import time

import yaml

from conftest import EXAMPLES, find_master, free_port

MANIFEST = EXAMPLES / "kubernetes" / "aiowsgi.yaml"


def manifest():
    docs = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    return docs, container


def probe(command, stats_port):
    assert command[:2] == ["python3", "-c"]
    script = command[2].replace("8002", str(stats_port))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=10)


def test_manifest_shape():
    docs, container = manifest()
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    grace = docs["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30 + 5  # graceful_timeout + preStop


def test_config_and_probes_against_a_real_server(tmp_path):
    docs, container = manifest()
    http_port, stats_port, metrics_port = free_port(), free_port(), free_port()
    command = container["readinessProbe"]["exec"]["command"]
    # No server yet: not ready.
    assert probe(command, stats_port).returncode != 0

    text = docs["ConfigMap"]["data"]["server.toml"]
    for old, new in (("0.0.0.0:8000", "127.0.0.1:%d" % http_port),
                     ("127.0.0.1:8002", "127.0.0.1:%d" % stats_port),
                     ("0.0.0.0:8003", "127.0.0.1:%d" % metrics_port),
                     ("/srv/app/wsgi.py", str(EXAMPLES / "hello.py"))):
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "server.toml"
    config.write_text(text + "[log]\nlevel = \"info\"\n")
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([find_master(), "-c", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            r = probe(command, stats_port)
            if r.returncode == 0:
                break
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, (r.stderr, log.read_text())
            time.sleep(0.2)
        # Ready means serving.
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
        path = container["livenessProbe"]["httpGet"]["path"]
        conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200 and b"aiowsgi_workers" in resp.read()
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
