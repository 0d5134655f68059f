"""Helpers for the observability tests: a Server with a [stats] table, and readers."""
import threading
import urllib.request

# read_stats and wait_for live in conftest (every e2e module may use them); re-exported here.
from conftest import APPS, Server, free_port, read_stats, toml_value, wait_for  # noqa: F401

OBS_APP = APPS / "obs_app.py"


class StatsServer(Server):
    """A Server whose config also has [stats] listen (TCP or unix) and metrics."""

    def __init__(self, workdir, app=OBS_APP, *, stats="tcp", metrics=True, **kwargs):
        super().__init__(workdir, app, **kwargs)
        self.stats_kind, self.want_metrics = stats, metrics
        self.stats_addr = self.metrics_port = None

    def config_text(self):
        text = super().config_text()
        stats = {}
        if self.stats_kind == "unix":
            self.stats_addr = "unix:" + str(self.workdir / "stats.sock")
        elif self.stats_kind:
            self.stats_addr = "127.0.0.1:%d" % free_port()
        if self.stats_addr:
            stats["listen"] = self.stats_addr
        if self.want_metrics:
            self.metrics_port = free_port()
            stats["metrics"] = "127.0.0.1:%d" % self.metrics_port
        lines = ["[stats]"] + ["%s = %s" % (k, toml_value(v)) for k, v in stats.items()]
        return text + "\n" + "\n".join(lines) + "\n"

    def stats(self):
        return read_stats(self.stats_addr)

    def metrics_text(self, path="/metrics"):
        url = "http://127.0.0.1:%d%s" % (self.metrics_port, path)
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()


def background_requests(server, path, count):
    """Starts `count` requests in threads; returns the threads (join them)."""
    threads = []
    for _ in range(count):
        t = threading.Thread(target=lambda: server.request("GET", path, timeout=30), daemon=True)
        t.start()
        threads.append(t)
    return threads
