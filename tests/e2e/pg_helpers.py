"""A throwaway PostgreSQL cluster for end-to-end tests: Debian's PostgreSQL 15, started once per
test module that imports the fixture (`from pg_helpers import postgres_fixture`) and asks for
`postgres`.

PostgreSQL refuses to run as root, and CI runs as root: initdb and pg_ctl then run as the
`postgres` system user the package creates (runuser), on a data folder in a fresh temp folder
that user owns; as any other user they run as that user. The cluster listens on 127.0.0.1 on a
free private port (conftest.free_port()) and on a unix socket in the temp folder, with fsync
and friends off (the data is thrown away). It has one role with a password (scram-sha-256 on
127.0.0.1, as an app would connect) and one database it owns; the superuser is reached only
through the private socket. The finalizer stops it with `pg_ctl stop -m immediate` and removes
the folder, whatever the tests did.

Missing binaries skip the module, except in CI (AIOWSGI_REQUIRE_TOOLS=1), where they fail it.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from conftest import free_port, require_tool

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROLE, PASSWORD, DATABASE = "aiowsgi", "aiowsgi-test-password", "aiowsgi"
SUPERUSER = "pgadmin"
START_ATTEMPTS = 3  # a free port can be taken between the probe and PostgreSQL's bind


class PgCluster:
    """One running cluster: where it listens and how to reach its database."""

    def __init__(self, root, run_as):
        self.root = Path(root)
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "postgres.log"
        self.run_as = run_as  # argv prefix that runs a command as the cluster's owner
        self.host, self.port = "127.0.0.1", None
        self.user, self.password, self.dbname = ROLE, PASSWORD, DATABASE

    def env(self):
        """libpq's variables for the database, for a server's `[app] env` (the test apps read
        them; psycopg2 and Django honour the same names)."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.dbname,
                "PGUSER": self.user, "PGPASSWORD": self.password}

    def connect(self):
        """A psycopg2 connection to the test database over TCP, autocommit, as the apps'
        role: the tests' own view of what the apps committed."""
        conn = psycopg2.connect(host=self.host, port=self.port, dbname=self.dbname,
                                user=self.user, password=self.password, connect_timeout=10)
        conn.autocommit = True
        return conn

    def query(self, sql, params=()):
        """All rows of one statement, on a connection of its own."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # ---- lifecycle ----
    def _run(self, *argv, timeout=60):
        result = subprocess.run(self.run_as + [str(a) for a in argv], capture_output=True,
                                text=True, timeout=timeout, cwd=str(self.root))
        if result.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s\n%s" % (
                " ".join(map(str, argv)), result.returncode, result.stdout, result.stderr,
                self.log_text()))
        return result

    def init(self):
        pwfile = self.root / "superuser.pw"
        pwfile.write_text("unused-locally\n")
        self._own(pwfile)
        # The superuser logs in over the private socket only (trust there: the socket folder
        # is reachable by its owner and root); TCP clients need the role's password.
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", SUPERUSER, "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")

    def start(self):
        last = None
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            options = " ".join([
                "-c listen_addresses=127.0.0.1", "-p %d" % self.port,
                "-c unix_socket_directories=%s" % self.socket_dir,
                # Thrown away after the module: durability buys nothing, speed does.
                "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
                "-c shared_buffers=16MB", "-c max_connections=100",
                "-c password_encryption=scram-sha-256"])
            try:
                self._run(PG_BIN / "pg_ctl", "start", "-D", self.data, "-l", self.log_path,
                          "-w", "-t", "60", "-o", options, timeout=90)
                break
            except RuntimeError as e:
                last = e
                if "already in use" not in self.log_text():
                    raise
        else:
            raise last
        self._superuser_sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (ROLE, PASSWORD))
        self._superuser_sql("CREATE DATABASE %s OWNER %s" % (DATABASE, ROLE))
        return self

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            subprocess.run(self.run_as + [str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data),
                                          "-m", "immediate", "-w", "-t", "30"],
                           capture_output=True, timeout=60, cwd=str(self.root))

    def _superuser_sql(self, sql):
        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, dbname="postgres",
                                user=SUPERUSER, connect_timeout=10)
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def _own(self, path):
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)


def _run_as_prefix():
    """The argv prefix that runs PostgreSQL's programs as an unprivileged user, or skips."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        why = "running as root and there is no `postgres` user to run PostgreSQL as"
        if os.environ.get("AIOWSGI_REQUIRE_TOOLS") == "1":
            pytest.fail(why + " (the postgresql package creates it); AIOWSGI_REQUIRE_TOOLS=1")
        pytest.skip(why)
    return [require_tool("runuser"), "-u", "postgres", "--"]


@pytest.fixture(scope="module", name="postgres")
def postgres_fixture():
    """A running PgCluster for the module; stopped and removed at its end."""
    require_tool("initdb", str(PG_BIN / "initdb"))
    require_tool("pg_ctl", str(PG_BIN / "pg_ctl"))
    run_as = _run_as_prefix()
    # Not under pytest's basetemp: its pytest-of-root folder is 0700, closed to `postgres`.
    root = tempfile.mkdtemp(prefix="aiowsgi-pg-")
    cluster = PgCluster(root, run_as)
    try:
        (cluster.socket_dir).mkdir()
        for path in (cluster.root, cluster.socket_dir):
            cluster._own(path)
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
