"""A minimal Django project (settings in djapp/settings.py) as a WSGI file.

aiowsgi-master --http 127.0.0.1:9090 --wsgi-file examples/django_app/wsgi.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djapp.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402  (needs the path above)

application = get_wsgi_application()
