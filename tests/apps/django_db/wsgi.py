"""Fixture for tests/e2e/test_threads_db.py: a Django project on PostgreSQL (dbsite/), its
connection taken from libpq's variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD) that
the test passes through the server's [app] env."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/apps, for core_sync
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dbsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402  (needs the path above)

application = get_wsgi_application()
