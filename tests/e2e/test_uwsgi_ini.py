"""uWSGI ini files run as they are (`aiowsgi-master --ini uwsgi.ini`): files in the shape of
well-known projects' (a Django site behind nginx on a unix socket with chmod-socket, a Flask
app on http-socket with static-map and env, one built from if-env and %(...)), each served
end to end; --check and --print-toml; refused options reported all at once."""
import email.utils
import http.client
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from conftest import EXAMPLES, Server, find_master, require_tool, wait_for
from wire_clients import uwsgi_exchange


class IniServer(Server):
    """An aiowsgi-master started with --ini on a uwsgi.ini written from `template`, where
    {port} is the chosen free port and {dir} the working folder."""

    def __init__(self, workdir, template, *, ready_path="/"):
        super().__init__(workdir, "uwsgi.ini", ready_path=ready_path)
        self.template = template
        self.config_path = self.workdir / "uwsgi.ini"

    def config_text(self):
        return self.template.format(port=self.port, dir=self.workdir)

    def command(self):
        return [find_master(), "--ini", str(self.config_path)]


@pytest.fixture
def ini_server(tmp_path):
    """Starts an IniServer in tmp_path; the autouse fixture of conftest stops it."""

    def make(template, *, ready_path="/", files=None):
        for name, text in (files or {}).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return IniServer(tmp_path, template, ready_path=ready_path).start()

    return make


def run_master(*args, cwd, env=None):
    return subprocess.run([find_master(), *args], cwd=str(cwd), capture_output=True, text=True,
                          timeout=60, env=env)


def uwsgi_get(sock_path, path, host="localhost"):
    """GET `path` over the uwsgi protocol on a unix socket, as nginx's uwsgi_pass does:
    (status line, body)."""
    v = {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
         "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": host, "SERVER_PORT": "80",
         "HTTP_HOST": host, "REMOTE_ADDR": "127.0.0.1"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        head, body = uwsgi_exchange(s, v)
    return head.split("\r\n", 1)[0], body


# ---- a Django site behind nginx: uwsgi protocol on a unix socket -----------------------------

DJANGO_INI = """\
# mysite_uwsgi.ini, as the Django and uWSGI tutorials write it
[uwsgi]
project = djapp
base = {dir}
chdir = %(base)
pythonpath = %(django)
module = wsgi:application
master = true
processes = 2
socket = %(base)/%(project).sock
chmod-socket = 666
vacuum = true
die-on-term = true
harakiri = 30
max-requests = 5000
enable-threads = true
single-interpreter = true
http-socket = 127.0.0.1:{port}
"""


def test_django_site_on_a_unix_socket_with_chmod_socket(ini_server, tmp_path):
    pytest.importorskip("django")
    template = DJANGO_INI.replace("%(django)", str(EXAMPLES / "django_app"))
    server = ini_server(template)
    sock = tmp_path / "djapp.sock"
    # The http-socket line only tells the harness when the workers are ready.
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
    status, body = uwsgi_get(sock, "/hello/uwsgi")
    assert status == "HTTP/1.1 200 OK", status
    assert body == b"Hello, uwsgi!"
    log = server.log_text()
    for option in ("master", "vacuum", "die-on-term", "enable-threads", "single-interpreter"):
        assert "uwsgi.ini" in log and ": %s: no effect here: " % option in log, log
    assert log.count(": master: no effect here") == 1
    assert wait_for(lambda: len(server.group_pids()) == 3)  # the master and processes = 2
    server.stop()
    assert not sock.exists()  # what vacuum asks for, always done


def test_django_site_behind_nginx_on_the_unix_socket(ini_server, tmp_path, tmp_path_factory):
    pytest.importorskip("django")
    from test_nginx import NGINX, Nginx  # the real nginx harness, on examples/nginx
    require_tool("nginx", NGINX)
    template = DJANGO_INI.replace("%(django)", str(EXAMPLES / "django_app"))
    ini_server(template)
    sock = tmp_path / "djapp.sock"
    nginx = Nginx(tmp_path_factory.mktemp("nginx"),
                  [("uwsgi_pass.conf", {"127.0.0.1:8001": "unix:%s" % sock})])
    try:
        nginx.start()
        conn = http.client.HTTPConnection("127.0.0.1", nginx.ports["uwsgi_pass.conf"], timeout=20)
        conn.request("GET", "/hello/nginx", headers={"Host": "localhost"})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"Hello, nginx!")
        conn.close()
    finally:
        nginx.stop()


# ---- a Flask app on http-socket with static-map and env ---------------------------------------

FLASK_APP = """\
import os
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "%s from %s" % (os.environ["GREETING"], os.environ["DEPLOY_ENV"])
"""

FLASK_INI = """\
[uwsgi]
http-socket = 127.0.0.1:{port}
wsgi-file = app.py
chdir = {dir}
callable = app
processes = 1
async = 20
env = GREETING=Hello
env = DEPLOY_ENV=staging
static-map = /static={dir}/assets
static-gzip-all = true
disable-logging = true
buffer-size = 32768
"""


def test_flask_app_on_http_socket_with_static_map_and_env(ini_server):
    pytest.importorskip("flask")
    server = ini_server(FLASK_INI, files={"app.py": FLASK_APP,
                                          "assets/site.css": "body { color: red }\n"})
    status, _, body = server.request("GET", "/")
    assert (status, body) == (200, b"Hello from staging")
    status, headers, body = server.request("GET", "/static/site.css")
    assert (status, body) == (200, b"body { color: red }\n")
    assert headers["content-type"].startswith("text/css")
    # disable-logging: no access line for either request.
    assert '"GET /static/site.css"' not in server.log_text()


HELLO_WSGI = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"""


# ---- static-expires, static-expires-uri and static-expires-type -------------------------------

EXPIRES_INI = r"""[uwsgi]
http-socket = 127.0.0.1:{port}
wsgi-file = app.py
chdir = {dir}
static-map = /static={dir}/assets
static-expires = ^{dir}/assets/fonts/ 31536000
static-expires-uri = ^/static/.*\.(css|js)$ 3600
static-expires-uri = ^/static/nocache/ 0
static-expires-type = image/png 600
"""


def expiry(headers):
    """(max-age, Expires minus Date in seconds) of a response, None for each one missing."""
    cc, expires = headers.get("cache-control"), headers.get("expires")
    age = int(cc.split("=", 1)[1]) if cc and cc.startswith("max-age=") else None
    if expires is None:
        return age, None
    delta = (email.utils.parsedate_to_datetime(expires)
             - email.utils.parsedate_to_datetime(headers["date"])).total_seconds()
    return age, delta


def test_static_expires_options_give_expires_and_max_age(ini_server):
    server = ini_server(EXPIRES_INI, files={
        "app.py": HELLO_WSGI, "assets/site.css": "body {}\n", "assets/app.js": "1;\n",
        "assets/logo.png": "png", "assets/fonts/a.woff2": "font", "assets/nocache/x.css": "x",
        "assets/nocache/x.txt": "x",
        "assets/readme.txt": "text"})

    def got(path, headers=None):
        status, h, _ = server.request("GET", path, headers=headers)
        assert status in (200, 304), (path, status)
        age, delta = expiry(h)
        # Expires is Date + max-age, give or take the second the two were written in.
        assert delta is None or abs(delta - age) <= 1, (path, h)
        return age if delta is not None else (None if age is None else "no Expires")

    assert got("/static/site.css") == 3600            # static-expires-uri
    assert got("/static/app.js") == 3600
    assert got("/static/site.css?v=2") is None        # the URI as uWSGI matches it: with the query
    assert got("/static/nocache/x.css") == 3600       # first rule that matches wins
    assert got("/static/nocache/x.txt") == 0          # 0: expired at once, as in uWSGI
    assert got("/static/logo.png") == 600             # static-expires-type
    assert got("/static/fonts/a.woff2") == 31536000   # static-expires, on the file's path
    assert got("/static/readme.txt") is None          # no rule: no Cache-Control, no Expires
    status, h, _ = server.request("GET", "/static/site.css")
    status, h304, _ = server.request("GET", "/static/site.css",
                                     headers={"If-None-Match": h["etag"]})
    assert status == 304 and h304["cache-control"] == "max-age=3600" and "expires" in h304
    status, _, body = server.request("GET", "/")
    assert (status, body) == (200, b"hello")
    assert "static-expires" not in server.log_text()  # mapped: no note, no error


def test_static_expires_errors_name_the_ini_line(tmp_path):
    (tmp_path / "app.py").write_text(HELLO_WSGI)
    (tmp_path / "s").mkdir()
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nhttp-socket = 127.0.0.1:1\nwsgi-file = app.py\nstatic-map = /s=s\n"
        "static-expires-uri = (unclosed 60\n"
        "static-expires-type = text/css soon\n"
        "static-expires = /v\\d+/ 60\n"
        "static-expires-uri-mtime = \\.css$ 60\n")
    out = run_master("--check", "--ini", "uwsgi.ini", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    err = out.stderr
    assert "uwsgi.ini:5: static-expires-uri = (unclosed 60: invalid regular expression" in err, err
    assert "uwsgi.ini:6: static-expires-type = text/css soon: 'soon' is not a number" in err, err
    assert "uwsgi.ini:7: static-expires = /v\\d+/ 60: \\d is PCRE, not POSIX: write [0-9]" in err
    assert ("uwsgi.ini:8: static-expires-uri-mtime: expiry counted from the file's modification "
            "time is not supported") in err, err


# ---- if-env, %(...) and an include ---------------------------------------------------------------

HELLO_APP = """\
import os


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s" % (os.environ["APP_NAME"], os.environ["MODE"])).encode()]
"""

LOGIC_INI = """\
[uwsgi]
app = hello
base = %d
ini = %(base)common.ini
if-env = AIOWSGI_INI_TEST_PORT
http-socket = 127.0.0.1:%(_)
endif =
if-not-env = AIOWSGI_INI_TEST_PRODUCTION
env = MODE=development
endif =
if-env = AIOWSGI_INI_TEST_PRODUCTION
env = MODE=production
endif =
if-exists = %(base)%(app).py
wsgi-file = %(_)
endif =

[production]
processes = 16
"""

COMMON_INI = """\
[uwsgi]
env = APP_NAME=%(app)
master = true
"""


def test_if_env_references_and_includes(tmp_path):
    # The harness's free port reaches the file through the environment, as $PORT would.
    class EnvPortServer(IniServer):
        def config_text(self):
            os.environ["AIOWSGI_INI_TEST_PORT"] = str(self.port)
            return self.template

    (tmp_path / "hello.py").write_text(HELLO_APP)
    (tmp_path / "common.ini").write_text(COMMON_INI)
    try:
        server = EnvPortServer(tmp_path, LOGIC_INI).start()
        status, _, body = server.request("GET", "/")
        assert (status, body) == (200, b"hello development")
        # [production] was not read: one worker, as uWSGI starts without processes.
        assert wait_for(lambda: len(server.group_pids()) == 2)
        assert "common.ini:3: master: no effect here" in server.log_text()
        # HUP reads the file again, as it does a server.toml.
        server.config_path.write_text(LOGIC_INI.replace("MODE=development", "MODE=reloaded"))
        os.kill(server.pid, signal.SIGHUP)
        assert wait_for(lambda: server.request("GET", "/")[2] == b"hello reloaded")
        assert "re-reading the configuration from %s" % server.config_path in server.log_text()
    finally:
        os.environ.pop("AIOWSGI_INI_TEST_PORT", None)


# ---- --check, --print-toml and errors -----------------------------------------------------------

def test_print_toml_gives_an_equivalent_server_toml(tmp_path):
    (tmp_path / "app.py").write_text(HELLO_APP)
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:1\nsocket = %dapp.sock\n"
        "chmod-socket = 660\nwsgi-file = %dapp.py\nprocesses = 3\nthreads = 4\n"
        "env = MODE=x\nlazy-apps = false\nharakiri = 20\n")
    out = run_master("--ini", "uwsgi.ini", "--print-toml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "# uwsgi.ini:2: master: no effect here: there is always a master process" in text
    assert "# uwsgi.ini:8: threads: no effect here: cores do this job" in text
    assert 'listen = ["127.0.0.1:1"]' in text
    assert 'uwsgi_listen = ["unix:%s/app.sock"]' % tmp_path in text
    assert 'socket_mode = "660"' in text
    assert "workers = 3" in text and "preload = true" in text
    assert 'wsgi_file = "%s/app.py"' % tmp_path in text
    assert 'env = { "MODE" = "x" }' in text
    assert "harakiri = 20" in text
    # The printed file is a valid server.toml with the same settings.
    (tmp_path / "server.toml").write_text(text)
    again = run_master("-c", "server.toml", "--print-toml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    body = lambda t: "\n".join(l for l in t.splitlines() if not l.startswith("#")).strip()
    assert body(again.stdout) == body(text)


def test_check_reports_refused_and_unknown_options_at_once(tmp_path):
    (tmp_path / "app.py").write_text(HELLO_APP)
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nhttp-socket = 127.0.0.1:1\nwsgi-file = app.py\ndaemonize = /var/log/u.log\n"
        "proceses = 4\nroute = ^/old redirect:/new\ncache2 = name=c,items=10\nharakiri = -1\n"
        "master = true\n")
    out = run_master("--check", "--ini", "uwsgi.ini", cwd=tmp_path)
    assert out.returncode == 1, out
    lines = out.stderr.splitlines()
    assert lines[0].startswith("uwsgi.ini:4: daemonize: aiowsgi does not fork into the "
                               "background (run it under systemd"), lines
    assert "uwsgi.ini:5: proceses: unknown option (did you mean processes?)" in lines
    assert any(l.startswith("uwsgi.ini:6: route: there is no internal routing (") for l in lines)
    assert any(l.startswith("uwsgi.ini:7: cache2: ") for l in lines)
    assert any(l.startswith("uwsgi.ini:8: harakiri = -1: ") for l in lines)
    assert len(lines) == 5, lines
    ok = run_master("--check", "--ini", "uwsgi.ini:fixed", cwd=tmp_path)
    assert ok.returncode == 1  # no [fixed] section: no listener, no app
    (tmp_path / "uwsgi.ini").write_text(
        "[uwsgi]\nhttp-socket = 127.0.0.1:1\nwsgi-file = app.py\nmaster = true\n")
    ok = run_master("--check", "--ini", "uwsgi.ini", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        "note: uwsgi.ini:4: master: no effect here: there is always a master process",
        "configuration OK"]


def test_uwsgi_options_work_as_flags(tmp_path):
    (tmp_path / "app.py").write_text(HELLO_APP)
    out = run_master("--http", "127.0.0.1:1", "--wsgi-file", "app.py", "--master", "--processes",
                     "4", "--chmod-socket", "660", "--logto", "x.log", "--print-toml",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "# command line: master: no effect here: there is always a master process" in out.stdout
    assert "workers = 4" in out.stdout and 'socket_mode = "660"' in out.stdout
    assert 'file = "%s"' % (tmp_path / "x.log") in out.stdout
    bad = run_master("--check", "--http", "127.0.0.1:1", "--wsgi-file", "app.py", "--daemonize",
                     "x.log", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("command line: daemonize: aiowsgi does not fork"), bad.stderr
    typo = run_master("--procesess", "4", cwd=tmp_path)
    assert typo.returncode != 0
    assert "unknown option '--procesess' (did you mean --processes?)" in typo.stderr


def test_unknown_server_toml_key_names_the_closest(tmp_path):
    (tmp_path / "app.py").write_text(HELLO_APP)
    (tmp_path / "t.toml").write_text(
        '[server]\nlisten = ["127.0.0.1:1"]\nworkrs = 2\n[app]\nwsgi_file = "app.py"\n')
    out = run_master("--check", "-c", "t.toml", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == "t.toml:3:1: [server] workrs: unknown key (did you mean workers?)"


def test_ini_and_config_together_is_a_usage_error(tmp_path):
    out = run_master("--ini", "u.ini", "-c", "s.toml", cwd=tmp_path)
    assert out.returncode == 1
    assert "--ini and --config both given" in out.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
