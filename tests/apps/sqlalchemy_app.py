"""Fixture for tests/e2e/test_threads_db.py: SQLAlchemy 1.4's scoped_session (its default
scope is threading.local) on PostgreSQL, from concurrent requests of one worker that suspend
in the middle of their transactions. The database comes from libpq's variables (PGHOST, ...)
that the test passes through the server's [app] env."""
import os
import threading

from core_sync import hold, json_app, meet, set_phase
from sqlalchemy import Column, Integer, String, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import declarative_base, scoped_session, sessionmaker

import aiowsgi

Base = declarative_base()


class SaRow(Base):
    __tablename__ = "sa_rows"
    id = Column(Integer, primary_key=True)
    tag = Column(String(64), index=True, nullable=False)
    n = Column(Integer, nullable=False, default=0)


# create_engine connects lazily: nothing is opened at import (safe under preload).
ENGINE = create_engine(URL.create(
    "postgresql+psycopg2", username=os.environ.get("PGUSER"),
    password=os.environ.get("PGPASSWORD"), host=os.environ.get("PGHOST"),
    port=int(os.environ.get("PGPORT", "5432")), database=os.environ.get("PGDATABASE")),
    pool_size=10, max_overflow=10, future=True)
Session = scoped_session(sessionmaker(bind=ENGINE, future=True))


def scoped(fn):
    """Ends the request's scoped session, as a web framework's teardown does."""
    def view(q):
        try:
            return fn(q)
        finally:
            Session.remove()
    return view


def setup(q):
    Base.metadata.drop_all(ENGINE)
    Base.metadata.create_all(ENGINE)
    return {"created": SaRow.__tablename__}


def own_count(tag):
    return Session.query(SaRow).filter_by(tag=tag).count()


@scoped
def count(q):
    return {"count": own_count(q["tag"])}


@scoped
def hold_in_transaction(q):
    """Adds a row in the scoped session's transaction, suspends until the test releases it,
    then rolls back."""
    key = q["key"]
    session = Session()
    session.add(SaRow(tag=key))
    session.flush()
    result = {"inside": own_count(key)}
    set_phase(key, "inside")
    result["released"] = hold(key)
    result["same_session"] = Session() is session
    result["inside_after"] = own_count(key)
    session.rollback()
    result["rolled_back"] = True
    return result


@scoped
def transaction_of_own_rows(q):
    """As the Django app's /tx: n rows, a suspension halfway, commit=1 commits, 0 rolls back."""
    n, tag = int(q["n"]), q["tag"]
    for i in range(n):
        if i == n // 2:
            Session.flush()
            aiowsgi.sleep(float(q.get("pause", "0.05")))
        Session.add(SaRow(tag=tag, n=i))
    Session.flush()
    own = own_count(tag)
    if q["commit"] == "1":
        Session.commit()
    else:
        Session.rollback()
    return {"own": own, "core": aiowsgi.core_id()}


@scoped
def identity(q):
    def look():
        return {"ident": threading.get_ident(), "session": id(Session()),
                "backend": Session.execute(text("SELECT pg_backend_pid()")).scalar()}
    before = look()
    meet(q["group"], q["n"])
    return {"before": before, "after": look(), "core": aiowsgi.core_id()}


application = json_app({
    "/setup": setup,
    "/count": count,
    "/hold": hold_in_transaction,
    "/tx": transaction_of_own_rows,
    "/identity": identity,
})
