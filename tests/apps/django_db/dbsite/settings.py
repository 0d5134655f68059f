import os

SECRET_KEY = "aiowsgi-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "dbsite.urls"
INSTALLED_APPS = ["dbsite"]
MIDDLEWARE = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "NAME": os.environ.get("PGDATABASE", "aiowsgi"),
        "USER": os.environ.get("PGUSER", "aiowsgi"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        # Django's default: each request closes its own connection when it ends, so a
        # request that closed another core's connection would show at once.
        "CONN_MAX_AGE": 0,
    }
}
