"""Reports how the worker's Python sees itself, for tests/e2e/test_virtualenv.py: GET / is
a readiness probe, GET /info a JSON document (prefix, executable, path, what imports)."""
import importlib
import json
import os
import shutil
import subprocess
import sys


def try_import(name):
    try:
        mod = importlib.import_module(name)
    except ImportError as e:
        return "ImportError: %s" % e
    return getattr(mod, "WHERE", None) or getattr(mod, "__file__", None) or "imported"


def info():
    script = shutil.which("hello-venv")
    return {
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "executable": sys.executable,
        "path": sys.path,
        "virtual_env": os.environ.get("VIRTUAL_ENV"),
        "pth_ran": os.environ.get("AIOWSGI_TEST_PTH"),
        "imports": {name: try_import(name) for name in
                    ("pthextra", "clipkg", "acme.widgets", "acme.gears", "django", "greenlet",
                     "yaml")},
        "script": script,
        "script_output": subprocess.run([script], capture_output=True, text=True,
                                        timeout=60).stdout.strip() if script else None,
        "child_prefix": subprocess.run([sys.executable, "-c", "import sys; print(sys.prefix)"],
                                       capture_output=True, text=True, timeout=60).stdout.strip(),
    }


def application(environ, start_response):
    if environ["PATH_INFO"] == "/info":
        body = json.dumps(info()).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
