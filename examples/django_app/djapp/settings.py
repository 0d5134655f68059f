# Everything the demo needs: no database, no admin, no templates on disk.
SECRET_KEY = "aiowsgi-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "djapp.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
APPEND_SLASH = False
