"""[app] virtualenv (SPEC.md "Keys being added"): the workers' Python runs as a venv's own
interpreter (sys.prefix, sys.executable, site-packages in site's order, .pth files, console
scripts, namespace packages), the server's greenlet stays importable in a venv without the
system's packages while the rest of them stay hidden, $VIRTUAL_ENV is used when the key is
unset, and a wrong venv is a config error before anything forks.

The venvs are built offline, once per module: `python3 -m venv` (Debian's python3-venv) and
`pip install --no-index --no-build-isolation` of three small packages written here. Each
test starts its own servers (stopped when it ends: conftest's stop_servers_the_test_started).
"""
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import greenlet
import pytest

from conftest import APPS, EXAMPLES, Server, find_master, free_port, wait_for
from test_boundary_protocol import base_vars, uwsgi_request

APP = APPS / "venv_app.py"
PYTHON = "/usr/bin/python3"  # Debian's, the interpreter the server embeds
EMBEDDED = platform.python_version()
SITE = "lib/python%d.%d/site-packages" % sys.version_info[:2]
SYSTEM_GREENLET = os.path.dirname(greenlet.__file__)

SETUP = "from setuptools import setup, find_namespace_packages\nsetup(%s)\n"
# name -> {file: text}; "@EXTRA@" becomes the folder a .pth line adds to sys.path.
PACKAGES = {
    # A .pth file with a path line and an import line, installed into site-packages.
    "pthpkg": {
        "setup.py": SETUP % ('name="pthpkg", version="1.0", py_modules=[], '
                             'data_files=[("%s", ["aiowsgi_test.pth"])]' % SITE),
        "aiowsgi_test.pth": "@EXTRA@\nimport os; os.environ['AIOWSGI_TEST_PTH'] = 'ran'\n",
    },
    # A console script, whose shebang is the venv's python.
    "clipkg": {
        "setup.py": SETUP % ('name="clipkg", version="1.0", packages=["clipkg"], '
                             'entry_points={"console_scripts": ["hello-venv=clipkg:main"]}'),
        "clipkg/__init__.py": "import sys\n\ndef main():\n    print('hello from', sys.prefix)\n",
    },
    # One part of the namespace package acme (no acme/__init__.py); acme.gears is in @EXTRA@.
    "acme-widgets": {
        "setup.py": SETUP % ('name="acme-widgets", version="1.0", '
                             'packages=find_namespace_packages(include=["acme*"])'),
        "acme/widgets/__init__.py": "",
    },
}


def run(cmd, **kwargs):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                         **kwargs)
    assert out.returncode == 0, "%s failed:\n%s%s" % (cmd, out.stdout, out.stderr)
    return out


def make_venv(path, *options):
    run([PYTHON, "-m", "venv", *options, path])
    return str(path)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory):
    if subprocess.run([PYTHON, "-c", "import ensurepip"], capture_output=True).returncode:
        if os.environ.get("AIOWSGI_REQUIRE_TOOLS") == "1":
            pytest.fail("python3-venv is not installed; AIOWSGI_REQUIRE_TOOLS=1")
        pytest.skip("python3-venv is not installed (bash .ci/deps installs it)")
    root = tmp_path_factory.mktemp("venvs")
    extra = root / "extra"
    (extra / "acme" / "gears").mkdir(parents=True)
    (extra / "acme" / "gears" / "__init__.py").write_text("")
    (extra / "pthextra.py").write_text("")
    for name, files in PACKAGES.items():
        for rel, text in files.items():
            p = root / "src" / name / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text.replace("@EXTRA@", str(extra)))
    app = make_venv(root / "app")
    run([Path(app, "bin", "python"), "-m", "pip", "install", "--no-index", "--no-build-isolation",
         "--disable-pip-version-check", "--no-cache-dir",
         *(root / "src" / name for name in PACKAGES)])
    system = make_venv(root / "system", "--system-site-packages", "--without-pip")
    return {"app": app, "system": system, "extra": str(extra), "root": root}


def info(server):
    status, _, body = server.request("GET", "/info", timeout=60)
    assert status == 200, body
    return json.loads(body)


def venv_sys_path(venv):
    """sys.path as the venv's own python has it (without the script folder '')."""
    out = run([Path(venv, "bin", "python"), "-c", "import sys, json; print(json.dumps(sys.path))"])
    return [p for p in json.loads(out.stdout) if p]


def test_the_app_runs_as_the_venvs_own_interpreter(venvs, tmp_path):
    venv = venvs["app"]
    server = Server(tmp_path, APP, app_options={"virtualenv": venv}).start()
    got = info(server)
    assert got["prefix"] == venv
    assert got["base_prefix"] == "/usr"
    assert got["executable"] == venv + "/bin/python"
    assert got["virtual_env"] == venv
    # site's order, .pth path lines included; the app's own folder comes first.
    assert [p for p in got["path"] if p != str(APPS)] == venv_sys_path(venv)
    assert got["pth_ran"] == "ran"
    imports = got["imports"]
    assert imports["pthextra"] == venvs["extra"] + "/pthextra.py"
    assert imports["clipkg"] == "%s/%s/clipkg/__init__.py" % (venv, SITE)
    assert imports["acme.widgets"] == "%s/%s/acme/widgets/__init__.py" % (venv, SITE)
    assert imports["acme.gears"] == venvs["extra"] + "/acme/gears/__init__.py"
    # The server's greenlet, and nothing else of the system's packages.
    assert imports["greenlet"] == SYSTEM_GREENLET + "/__init__.py"
    assert imports["django"].startswith("ImportError")
    assert imports["yaml"].startswith("ImportError")
    # Console scripts and subprocesses run the venv's python.
    assert got["script"] == venv + "/bin/hello-venv"
    assert got["script_output"] == "hello from " + venv
    assert got["child_prefix"] == venv
    assert "the app runs in the virtualenv " + venv in server.log_text()


def test_uvloop_is_importable_too(venvs, tmp_path):
    server = Server(tmp_path, APP, app_options={"virtualenv": venvs["app"], "loop": "uvloop"})
    server.start()
    got = info(server)
    assert got["prefix"] == venvs["app"]
    assert "ready (uvloop loop" in server.log_text()


def test_virtual_env_is_used_when_the_key_is_unset(venvs, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTUAL_ENV", venvs["app"])
    (tmp_path / "a").mkdir()
    server = Server(tmp_path / "a", APP).start()
    assert info(server)["prefix"] == venvs["app"]
    assert ("the app runs in the virtualenv %s (from VIRTUAL_ENV; [app] virtualenv is unset)"
            % venvs["app"]) in server.log_text()
    server.stop()
    # The key wins over the variable.
    (tmp_path / "b").mkdir()
    server = Server(tmp_path / "b", APP, app_options={"virtualenv": venvs["system"]}).start()
    assert info(server)["prefix"] == venvs["system"]
    assert "from VIRTUAL_ENV" not in server.log_text()


def test_without_a_virtualenv_the_system_interpreter_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    got = info(Server(tmp_path, APP).start())
    assert (got["prefix"], got["executable"]) == ("/usr", "/usr/bin/python%d.%d" % sys.version_info[:2])
    assert got["virtual_env"] is None
    assert not got["imports"]["django"].startswith("ImportError")


def test_the_django_example_from_a_venv_with_system_site_packages(venvs, tmp_path):
    # The example as it is, and one more URL saying where Python and Django came from.
    app = tmp_path / "django_venv.py"
    app.write_text(textwrap.dedent("""\
        import json, runpy, sys
        import django
        example = runpy.run_path(%r)["application"]

        def application(environ, start_response):
            if environ["PATH_INFO"] != "/where":
                return example(environ, start_response)
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps([sys.prefix, django.__file__]).encode()]
        """ % str(EXAMPLES / "django_app" / "wsgi.py")))
    server = Server(tmp_path, app, app_options={"virtualenv": venvs["system"]}).start()
    status, _, body = server.request("GET", "/")
    assert (status, body) == (200, b"Hello from Django")
    status, _, body = server.request("GET", "/hello/venv")
    assert (status, body) == (200, b"Hello, venv!")
    prefix, django_file = json.loads(server.request("GET", "/where")[2])
    assert prefix == venvs["system"]
    assert django_file.startswith("/usr/lib/python3/dist-packages/django/")


@pytest.mark.parametrize("preload", [False, True], ids=["imported-per-worker", "preload"])
def test_hup_moves_the_app_to_a_changed_virtualenv(venvs, tmp_path, preload):
    server = Server(tmp_path, APP, workers=2, server={"preload": preload},
                    app_options={"virtualenv": venvs["app"]}).start()
    assert info(server)["prefix"] == venvs["app"]
    server.app_extra["virtualenv"] = venvs["system"]
    server.config_path.write_text(server.config_text())
    os.kill(server.pid, signal.SIGHUP)
    # Old workers drain; every answer after that comes from the new generation.
    assert wait_for(lambda: all(info(server)["prefix"] == venvs["system"] for _ in range(4)),
                    timeout=60)
    if preload:
        assert len(server.preload_pids()) == 2
    server.assert_healthy()


def test_the_uwsgi_protocol_serves_from_the_venv(venvs, tmp_path):
    port = free_port()
    server = Server(tmp_path, APP, server={"uwsgi_listen": ["127.0.0.1:%d" % port]},
                    app_options={"virtualenv": venvs["app"]}).start()
    status, _, body = uwsgi_request(port, base_vars("/info"))
    assert status == 200
    assert json.loads(body)["prefix"] == venvs["app"]


def test_auto_reload_does_not_watch_the_venv(venvs, tmp_path):
    app = tmp_path / "app.py"
    app.write_text("import clipkg, acme.widgets, greenlet\n\n"
                   "def application(environ, start_response):\n"
                   "    start_response('200 OK', [])\n"
                   "    return [b'v1']\n")
    server = Server(tmp_path, app, app_options={"virtualenv": venvs["app"], "reload": True})
    server.start()
    log = server.wait_log("auto-reload: watching", timeout=30)
    # The app's own file only: neither the venv nor the system's greenlet.
    assert re.search(r"auto-reload: watching 1 files in 1 directories", log), log[-2000:]
    app.write_text(app.read_text().replace("v1", "v2"))
    assert wait_for(lambda: server.request("GET", "/")[2] == b"v2", timeout=60)


# ---- errors: from --check and at start, before anything forks ----------------------------

def broken_venvs(venvs):
    root = venvs["root"] / "broken"
    if root.exists():
        return root
    plain = root / "plain"
    plain.mkdir(parents=True)
    other = Path(make_venv(root / "other", "--without-pip"))
    cfg = other / "pyvenv.cfg"
    cfg.write_text(re.sub(r"version = .*", "version = 3.9.2", cfg.read_text()))
    broken = Path(make_venv(root / "broken", "--without-pip"))
    (broken / "pyvenv.cfg").write_text("home = /usr/bin\nthis line is not a setting\n")
    # A greenlet pip installed (its metadata says 0.4.0), and one copied in without metadata.
    recorded = Path(make_venv(root / "recorded", "--without-pip"))
    (recorded / SITE / "greenlet-0.4.0.dist-info").mkdir()
    copied = Path(make_venv(root / "copied", "--without-pip"))
    (copied / SITE / "greenlet").mkdir()
    (copied / SITE / "greenlet" / "__init__.py").write_text("__version__ = '0.4.0'\n")
    return root


def master(args, cwd, env=None, timeout=60):
    return subprocess.run([find_master(), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


ERRORS = {
    "plain": ["not a virtualenv: no pyvenv.cfg in {path}", "embeds Python " + EMBEDDED],
    "other": ["virtualenv {path} was made by Python 3.9.2", "embeds Python " + EMBEDDED],
    "broken": ["broken virtualenv: {path}/pyvenv.cfg: line 2 is not", "embeds Python " + EMBEDDED],
    "recorded": ["virtualenv {path} holds greenlet 0.4.0",
                 "built against greenlet " + greenlet.__version__],
}


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_a_wrong_venv_is_a_config_error(venvs, tmp_path, kind):
    path = str(broken_venvs(venvs) / kind)
    (tmp_path / "server.toml").write_text(
        '[server]\nlisten = ["127.0.0.1:%d"]\n[app]\nwsgi_file = "%s"\nvirtualenv = "%s"\n'
        % (free_port(), APP, path))
    for args in (["--check", "-c", "server.toml"], ["-c", "server.toml"]):
        out = master(args, tmp_path)
        assert out.returncode == 1, out
        assert out.stderr.startswith("server.toml:5:14: [app] virtualenv = \"%s\": " % path)
        for part in ERRORS[kind]:
            assert part.format(path=path) in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "worker" not in out.stderr
    # The same from the flags in each spelling, and from $VIRTUAL_ENV.
    for flag in ("--virtualenv", "--venv", "--home", "-H"):
        out = master(["--check", "--http", ":%d" % free_port(), "--wsgi-file", APP, flag, path],
                     tmp_path)
        assert out.returncode == 1 and ERRORS[kind][0].format(path=path) in out.stderr, out
    env = dict(os.environ, VIRTUAL_ENV=path)
    out = master(["--check", "--http", ":%d" % free_port(), "--wsgi-file", APP], tmp_path, env)
    assert out.returncode == 1, out
    assert out.stderr.startswith("environment: VIRTUAL_ENV=%s: " % path), out.stderr


def test_every_flag_spelling_takes_a_good_venv(venvs, tmp_path):
    for flag in ("--virtualenv", "--venv", "--home", "-H"):
        out = master(["--check", "--http", ":%d" % free_port(), "--wsgi-file", APP, flag,
                      venvs["app"]], tmp_path)
        assert (out.returncode, out.stdout) == (0, "configuration OK\n"), out


def test_a_greenlet_copied_into_the_venv_stops_the_start(venvs, tmp_path):
    # No metadata for the master to see: the worker finds it at start and says why.
    path = str(broken_venvs(venvs) / "copied")
    server = Server(tmp_path, APP, app_options={"virtualenv": path})
    with pytest.raises(RuntimeError):
        server.start()
    log = server.log_text()
    assert ("the virtualenv %s holds greenlet 0.4.0 (%s/%s), but aiowsgi was built against "
            "greenlet %s" % (path, path, SITE, greenlet.__version__)) in log, log[-3000:]
    assert server.proc.returncode not in (None, 0)
