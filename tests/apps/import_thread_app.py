"""Fixture for tests/e2e/test_threads_locals.py: an app that starts a background thread at
import, as apps do for a metrics pusher or a cache refresher. Under [server] preload the import
runs in the preload process, and the thread does not survive the fork into the workers."""
import threading
import time

from core_sync import json_app

THREAD_NAME = "aiowsgi-test-import-thread"


def _tick():
    while True:
        time.sleep(0.5)


_thread = threading.Thread(target=_tick, name=THREAD_NAME, daemon=True)
_thread.start()

application = json_app({"/alive": lambda q: {"alive": _thread.is_alive()}})
