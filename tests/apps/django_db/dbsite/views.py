"""Views that use Django's ORM from concurrent requests of one worker, each suspending in the
middle of its work (inside a transaction, holding a connection) while others run."""
import functools
import os
import threading
import traceback

from core_sync import error_text, hold, meet, phase, release, set_phase
from django.db import connection, connections, transaction
from django.http import HttpResponse, JsonResponse

import aiowsgi

from .models import Row


class Rollback(Exception):
    pass


def json_view(fn):
    """JSON of fn(query); an exception gives a 500 naming it (Django's own 500 page would
    hide SynchronousOnlyOperation or InterfaceError from the test's failure message)."""
    @functools.wraps(fn)
    def view(request):
        try:
            return JsonResponse(fn(request.GET), safe=False)
        except Exception as e:  # the test reads it from the body
            return JsonResponse({"error": error_text(e), "traceback": traceback.format_exc()},
                                status=500)
    return view


def index(request):
    return HttpResponse("ok", content_type="text/plain")


def setup(q):
    """(Re)creates the model's table: the fixture calls it once per server."""
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS %s" % Row._meta.db_table)
    with connection.schema_editor() as editor:
        editor.create_model(Row)
    return {"created": Row._meta.db_table}


def write(q):
    """Plain ORM writes and reads."""
    for i in range(int(q["n"])):
        Row.objects.create(tag=q["tag"], n=i)
    rows = Row.objects.filter(tag=q["tag"]).order_by("n")
    return {"count": rows.count(), "ns": [r.n for r in rows]}


def count(q):
    return {"count": Row.objects.filter(tag=q["tag"]).count()}


def hold_in_transaction(q):
    """Inserts a row inside transaction.atomic(), suspends until the test releases it (other
    requests run meanwhile), then rolls back."""
    key = q["key"]
    result = {}
    try:
        with transaction.atomic():
            Row.objects.create(tag=key)
            result["inside"] = Row.objects.filter(tag=key).count()
            result["connection_before"] = id(connection.connection)
            set_phase(key, "inside")
            result["released"] = hold(key)
            result["connection_after"] = id(connection.connection)
            result["inside_after"] = Row.objects.filter(tag=key).count()
            raise Rollback()
    except Rollback:
        result["rolled_back"] = True
    return result


def transaction_of_own_rows(q):
    """n rows tagged with this request's tag, in one transaction with a suspension between
    the two halves, then committed (commit=1) or rolled back (commit=0); returns what the
    transaction saw of its tag before it ended."""
    n, tag = int(q["n"]), q["tag"]
    try:
        with transaction.atomic():
            for i in range(n):
                if i == n // 2:
                    aiowsgi.sleep(float(q.get("pause", "0.05")))
                Row.objects.create(tag=tag, n=i)
            own = Row.objects.filter(tag=tag).count()
            if q["commit"] != "1":
                raise Rollback()
    except Rollback:
        pass
    return {"own": own, "core": aiowsgi.core_id()}


def identity(q):
    """What this core's requests see of the thread and of Django's connection, before and
    after meeting the other requests of the group (all on distinct cores at once)."""
    def look():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
        return {"ident": threading.get_ident(), "wrapper": id(connections["default"]),
                "dbapi": id(connection.connection), "backend": backend}
    before = look()
    meet(q["group"], q["n"])
    return {"before": before, "after": look(), "core": aiowsgi.core_id()}


def environment(q):
    return {"DJANGO_ALLOW_ASYNC_UNSAFE": os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")}


ROUTES = {
    "": index,
    "setup": json_view(setup),
    "write": json_view(write),
    "count": json_view(count),
    "hold": json_view(hold_in_transaction),
    "tx": json_view(transaction_of_own_rows),
    "identity": json_view(identity),
    "env": json_view(environment),
    "phase": json_view(lambda q: phase(q["key"])),
    "release": json_view(lambda q: release(q["key"])),
}
