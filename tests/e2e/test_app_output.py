"""The app's standard output and error (tests/apps/output_app.py): real text files over fds 1
and 2 whose lines reach the server log marked with their stream, in the text and JSON
formats, from Python, C code and subprocesses alike; a burst larger than a pipe holds never
hangs the worker."""
import json

import pytest

from conftest import APPS, wait_for

APP = APPS / "output_app.py"


@pytest.fixture(scope="module")
def text_server(server_factory):
    return server_factory(APP, workers=1, cores=4)


@pytest.fixture(scope="module")
def json_server(server_factory):
    return server_factory(APP, workers=1, cores=4, log={"format": "json"})


def log_lines_ending(server, suffix, count=1, timeout=15.0):
    """The log's lines that end with `suffix`, once there are `count` of them (or the time is
    up)."""
    def lines():
        return [l for l in server.log_text().splitlines() if l.endswith(suffix)]
    wait_for(lambda: len(lines()) >= count, timeout)
    return lines()


def get_ok(server, path, timeout=10):
    status, _, body = server.request("GET", path, timeout=timeout)
    assert (status, body) == (200, b"ok"), (path, status, body)


@pytest.mark.parametrize("path, stream, text", [
    ("/print", "stdout", "printed line"),
    ("/buffer", "stdout", "buffer line"),           # sys.stdout.buffer
    ("/fileno", "stdout", "stdout fd line"),        # os.write(sys.stdout.fileno(), ...)
    ("/fileno", "stderr", "stderr fd line"),
    ("/subprocess", "stdout", "subprocess line"),   # subprocess.run(..., stdout=sys.stdout)
    ("/subprocess", "stderr", "subprocess stderr line"),  # a child writing to its fd 2
])
def test_output_reaches_the_log_with_its_stream(text_server, path, stream, text):
    get_ok(text_server, path)
    lines = log_lines_ending(text_server, "[%s] %s" % (stream, text))
    assert lines, text_server.log_text()[-3000:]
    assert "[worker 1] [%s] %s" % (stream, text) in lines[-1], lines


def test_import_time_output_is_logged(text_server):
    assert log_lines_ending(text_server, "[stdout] output app imported")


def test_faulthandler_can_write_to_stderr(text_server):
    get_ok(text_server, "/faulthandler")
    assert log_lines_ending(text_server, "[stderr] Stack (most recent call first):")
    text_server.assert_healthy()


def test_app_logging_is_marked_stderr_not_error(text_server):
    # logging.basicConfig writes to stderr: the line is the app's, with its own level in it;
    # the server marks the stream, not a severity of its own.
    get_ok(text_server, "/logging")
    lines = log_lines_ending(text_server, "[stderr] INFO:outputapp:logging info line")
    assert lines, text_server.log_text()[-3000:]
    assert not any("[error]" in l for l in lines), lines


def test_a_write_larger_than_a_pipe_does_not_hang_the_worker(text_server):
    get_ok(text_server, "/big", timeout=60)
    assert log_lines_ending(text_server, "[stdout] big write done")
    assert len(log_lines_ending(text_server, "[stdout] " + "x" * 1023, count=1024)) == 1024
    get_ok(text_server, "/big-subprocess", timeout=60)
    assert log_lines_ending(text_server, "[stdout] big subprocess done")
    text_server.assert_healthy()


def json_objects(server, pred, count=1, timeout=15.0):
    def objs():
        out = []
        for line in server.log_text().splitlines():
            if line.startswith("{"):
                o = json.loads(line)  # every JSON line must parse
                if pred(o):
                    out.append(o)
        return out
    wait_for(lambda: len(objs()) >= count, timeout)
    return objs()


def test_json_format_has_the_stream_and_the_text_as_written(json_server):
    get_ok(json_server, "/json-text")
    get_ok(json_server, "/fileno")
    text = 'quote " backslash \\ tab \t caf\u00e9'
    out = json_objects(json_server, lambda o: o.get("message") == text)
    assert out, json_server.log_text()[-3000:]
    o = out[-1]
    assert o["stream"] == "stdout" and o["worker"] == 1 and o["pid"] in json_server.group_pids()
    err = json_objects(json_server, lambda o: o.get("message") == "stderr fd line")
    assert err and err[-1]["stream"] == "stderr"


def test_preloaded_workers_log_their_own_output(server_factory):
    s = server_factory(APP, workers=2, cores=2, server={"preload": True})
    # Imported once, in the preload process; its output is logged as the preload's.
    assert log_lines_ending(s, "[preload] [stdout] output app imported")
    for _ in range(4):
        get_ok(s, "/print")
    lines = log_lines_ending(s, "[stdout] printed line", count=4)
    assert len(lines) >= 4 and all("[worker " in l for l in lines), lines
    get_ok(s, "/big", timeout=60)
    assert log_lines_ending(s, "[stdout] big write done")
    s.assert_healthy()
