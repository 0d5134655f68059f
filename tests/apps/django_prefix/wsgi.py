"""A Django site with its admin, for apps served under a URL prefix (tests/e2e/test_proxies.py):
reverse(), redirects, the admin's login redirect and static URLs must carry SCRIPT_NAME.
No database is touched: the admin only redirects an anonymous user and shows the login form
(the sqlite database is in memory)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefixsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402  (needs the path above)

application = get_wsgi_application()
