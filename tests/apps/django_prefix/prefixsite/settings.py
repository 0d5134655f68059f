SECRET_KEY = "aiowsgi-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "shop.example.com"]
ROOT_URLCONF = "prefixsite.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
# Relative: Django puts SCRIPT_NAME in front of it (the prefix the app is mounted at).
STATIC_URL = "static/"
USE_TZ = True
# The proxy says https with X-Forwarded-Proto; the server turns it into wsgi.url_scheme, so
# Django needs no SECURE_PROXY_SSL_HEADER.
