"""Django's ORM and SQLAlchemy's scoped_session on a real PostgreSQL, from concurrent requests
of one worker (issue 17): each core keeps its own connection and transaction, so a request
suspended inside a transaction is never disturbed by the others.

The apps are tests/apps/django_db/ and tests/apps/sqlalchemy_app.py; the cluster comes from
pg_helpers (started once for the module). Concurrent requests meet inside the worker before
they look (tests/apps/core_sync.py), so nothing depends on timing."""
import concurrent.futures

import pytest

from conftest import APPS
from pg_helpers import postgres_fixture  # noqa: F401  (the module's `postgres`)
from threads_helpers import concurrently, get_json, group_name, release, start_request, wait_phase

CORES = 10
APPS_UNDER_TEST = {
    # name: (WSGI file, the table its rows go to)
    "django": (APPS / "django_db" / "wsgi.py", "dbsite_row"),
    "sqlalchemy": (APPS / "sqlalchemy_app.py", "sa_rows"),
}


@pytest.fixture(scope="module")
def servers(server_factory, postgres):
    started = {}

    def get(name):
        if name not in started:
            wsgi, table = APPS_UNDER_TEST[name]
            server = server_factory(wsgi, workers=1, cores=CORES, env=postgres.env())
            assert get_json(server, "/setup") == {"created": table}
            started[name] = server
        return started[name]
    return get


@pytest.fixture(params=sorted(APPS_UNDER_TEST))
def app(request, servers):
    """(server, table) for each app in turn."""
    return servers(request.param), APPS_UNDER_TEST[request.param][1]


def rows_of(postgres, table, tag):
    return postgres.query("SELECT count(*) FROM %s WHERE tag = %%s" % table, (tag,))[0][0]


def test_django_orm_reads_and_writes(servers, postgres):
    server = servers("django")
    tag = group_name("write")
    assert get_json(server, "/write?tag=%s&n=3" % tag) == {"count": 3, "ns": [0, 1, 2]}
    assert get_json(server, "/count?tag=" + tag) == {"count": 3}
    assert rows_of(postgres, "dbsite_row", tag) == 3


def test_concurrent_request_does_not_see_or_break_an_open_transaction(app, postgres):
    server, table = app
    key = group_name("hold")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = start_request(pool, server, "/hold?key=" + key)
        try:
            wait_phase(server, key, "inside", pending)
            # Request A sits in its transaction with one uncommitted row: B, on another core,
            # must not see it and must leave A's connection alone.
            assert get_json(server, "/count?tag=" + key) == {"count": 0}
            assert rows_of(postgres, table, key) == 0
        finally:
            release(server, key)
        held = pending.result(timeout=30)
    assert held["inside"] == 1 and held["inside_after"] == 1, held
    assert held["released"] and held["rolled_back"], held
    if "connection_before" in held:  # Django: the DB-API connection did not change under A
        assert held["connection_before"] == held["connection_after"], held
    if "same_session" in held:  # SQLAlchemy: the scoped session is still A's own
        assert held["same_session"], held
    assert get_json(server, "/count?tag=" + key) == {"count": 0}
    assert rows_of(postgres, table, key) == 0


def test_fifty_concurrent_transactions_each_commit_their_own_rows(app, postgres):
    server, table = app
    tags = [group_name("tx") for _ in range(50)]
    # Every third request rolls back: a transaction shared between cores would commit its
    # rows with another request's commit.
    commits = {t: i % 3 != 0 for i, t in enumerate(tags)}
    results = concurrently(server, ["/tx?tag=%s&n=4&pause=0.1&commit=%d" % (t, commits[t])
                                    for t in tags], timeout=60)
    assert [r["own"] for r in results] == [4] * 50, results
    assert len({r["core"] for r in results}) > 1, "the requests never overlapped"
    counts = dict(postgres.query("SELECT tag, count(*) FROM %s WHERE tag = ANY(%%s) GROUP BY tag"
                                 % table, (tags,)))
    assert counts == {t: 4 for t in tags if commits[t]}


def test_each_core_has_its_own_connection(app):
    server, _ = app
    group = group_name("ident")
    n = 5
    results = concurrently(server, ["/identity?group=%s&n=%d" % (group, n)] * n)
    assert len({r["core"] for r in results}) == n
    for r in results:
        assert r["before"] == r["after"], "a request's connection changed while suspended: %r" % r
    for field in results[0]["after"]:
        values = [r["after"][field] for r in results]
        assert len(set(values)) == n, "cores share %s: %r" % (field, values)


def test_users_own_django_allow_async_unsafe_is_kept(server_factory, postgres):
    server = server_factory(APPS_UNDER_TEST["django"][0], workers=1, cores=2,
                            env=dict(postgres.env(), DJANGO_ALLOW_ASYNC_UNSAFE="from-user"))
    assert get_json(server, "/env") == {"DJANGO_ALLOW_ASYNC_UNSAFE": "from-user"}


def test_django_allow_async_unsafe_is_set_by_default(servers):
    assert get_json(servers("django"), "/env")["DJANGO_ALLOW_ASYNC_UNSAFE"]
