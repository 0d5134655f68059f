"""The Python halves of the built-in modules (worker/python/*.py) are embedded at build time
and run under their own file names: a traceback through them names the file and shows the
line's text, in the server log and in the app's own formatted tracebacks."""
import json

import pytest

from conftest import APPS, BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "aiowsgi", reason="aiowsgi's own module files")

AIOWSGI_PY = '"<aiowsgi>/worker/python/aiowsgi_bootstrap.py", line '
UWSGI_PY = '"<aiowsgi>/worker/python/uwsgi_bootstrap.py", line '


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(APPS / "bootstrap_traceback_app.py", workers=1, cores=2)


def logged_traceback(server, path):
    """The traceback the server logged for the uncaught exception of GET path."""
    status, _, _ = server.request("GET", path)
    assert status == 500
    marker = "exception calling the application for GET %s" % path
    text = server.wait_log(marker)
    assert marker in text, text
    return text[text.index(marker):]


def test_aiowsgi_module_frames_name_the_file_and_show_the_line(server):
    text = logged_traceback(server, "/await_not_awaitable")
    assert AIOWSGI_PY in text, text
    lines = text[text.index(AIOWSGI_PY):].split("\n")
    assert lines[0].endswith(", in await_"), lines[0]
    assert "fut = _asyncio.ensure_future(awaitable, loop=_loop)" in lines[1], lines[1]
    assert "TypeError" in text


def test_uwsgi_module_frames_name_the_file_and_show_the_line(server):
    text = logged_traceback(server, "/wait_on_no_fd")
    assert UWSGI_PY in text, text
    lines = text[text.index(UWSGI_PY):].split("\n")
    assert lines[0].endswith(", in wait_fd_read"), lines[0]
    assert "w.fds.append((_fileno(fd), False))" in lines[1], lines[1]
    assert ", in _fileno\n    return fd if isinstance(fd, int) else fd.fileno()" in text, text
    assert "AttributeError" in text


def test_the_apps_own_tracebacks_show_the_lines_too(server):
    status, _, body = server.request("GET", "/formatted")
    assert status == 200
    text = body.decode()
    assert UWSGI_PY in text and "in wait_fd_read" in text, text
    assert "w.fds.append((_fileno(fd), False))" in text, text


def test_the_modules_keep_their_docstrings_and_namespace(server):
    status, _, body = server.request("GET", "/module_attrs")
    assert status == 200
    attrs = json.loads(body)
    assert attrs["aiowsgi"]["doc"].startswith("aiowsgi: the worker's asyncio loop")
    assert attrs["uwsgi"]["doc"].startswith("uWSGI's Python API")
    for m in attrs.values():
        assert not m["file"] and m["builtins"], attrs


def test_the_server_keeps_serving(server):
    assert server.request("GET", "/")[0] == 200
