# Everything the demo needs: one model on SQLite, no admin, no templates on disk.
import os
import tempfile

SECRET_KEY = "aiowsgi-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "djapp.urls"
INSTALLED_APPS = ["djapp"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
# SQLite in a file the workers can write: $AIOWSGI_DJANGO_DB, else the system's temp folder.
# Create the table once with `python3 manage.py migrate`. For PostgreSQL, use the
# "django.db.backends.postgresql" ENGINE with HOST, PORT, NAME, USER and PASSWORD instead.
DB_FILE = os.path.join(tempfile.gettempdir(), "aiowsgi-django-example.sqlite3")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("AIOWSGI_DJANGO_DB", DB_FILE),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A view's exception goes to stderr, which is the server's log, with its traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
USE_TZ = True
APPEND_SLASH = False
