# The Python half of the built-in `aiowsgi` module: the parts not on the request hot path.
# Embedded in the worker at build time and run once per worker, in the module's namespace,
# after the C half (python_module.cpp) has defined its functions there. Comments only
# up here, no docstring: it would replace the module's __doc__.

import asyncio as _asyncio
import sys as _sys
import greenlet as _greenlet

# The C half's functions, already in this namespace (named here so linters know them).
_log = globals()['_log']                    # _log(level, text): one line to the server log
_client_gone = globals()['_client_gone']    # True if the current request's client left

_loop = None
_worker_id = 0
_numproc = 1


def worker_id():
    """This worker's id, counting from 1 (like uwsgi.worker_id())."""
    return _worker_id


def loop():
    """The worker's asyncio event loop."""
    return _loop


def core_id():
    """The id of the core serving the current request, counting from 0."""
    core = getattr(_greenlet.getcurrent(), '_aiowsgi_core', None)
    if core is None:
        raise RuntimeError('aiowsgi.core_id() called outside a request core')
    return core


class FileWrapper:
    """environ['wsgi.file_wrapper']: served with sendfile() when filelike has a real fd."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class ClientDisconnected(ConnectionError):
    """Raised by await_() when the client closed its connection while the request waited
    (the awaitable has been cancelled)."""


# Module-wide default for await_(cancel_on_disconnect=...): set it to False in the app to let
# awaited work finish after the client went away.
cancel_on_disconnect = True
_gone_waiters = {}  # core id -> callback, for the requests suspended in await_()


def await_(awaitable, timeout=None, *, cancel_on_disconnect=None):
    """Run awaitable on the worker's loop, suspending only this request's core until it is
    done; return its result or raise its exception (TimeoutError past timeout seconds, after
    cancelling it). If the client disconnects meanwhile, the awaitable is cancelled and
    ClientDisconnected is raised, unless cancel_on_disconnect is False (default: the module's
    aiowsgi.cancel_on_disconnect)."""
    me = _greenlet.getcurrent()
    core = getattr(me, '_aiowsgi_core', None)
    if core is None or me.parent is None:
        raise RuntimeError('aiowsgi.await_() must be called from inside a request, '
                           'not at import time or from a loop callback')
    if cancel_on_disconnect is None:
        cancel_on_disconnect = globals()['cancel_on_disconnect']
    fut = _asyncio.ensure_future(awaitable, loop=_loop)
    if cancel_on_disconnect and _client_gone():
        fut.cancel()
        raise ClientDisconnected('the client closed the connection')
    waiting = [True]
    gone = [False]

    def wake(_=None):
        if waiting[0]:
            waiting[0] = False
            me.switch()

    def client_gone():
        # Called by the server from its reader: resume from a fresh loop callback instead.
        if waiting[0]:
            gone[0] = True
            _loop.call_soon(wake)

    timer = _loop.call_later(timeout, wake) if timeout is not None else None
    fut.add_done_callback(wake)
    if cancel_on_disconnect:
        _gone_waiters[core] = client_gone
    try:
        while waiting[0]:
            me.parent.switch()
    except BaseException:
        waiting[0] = False
        fut.cancel()
        raise
    finally:
        if cancel_on_disconnect:
            _gone_waiters.pop(core, None)
        if timer is not None:
            timer.cancel()
    if not fut.done():
        fut.cancel()
        if gone[0]:
            raise ClientDisconnected('the client closed the connection')
        raise TimeoutError('aiowsgi.await_() timed out after %s s' % timeout)
    return fut.result()


def sleep(seconds):
    """Suspend this request's core for seconds without blocking the loop."""
    return await_(_asyncio.sleep(seconds))


def _log_task_exception(task):
    if not task.cancelled() and task.exception() is not None:
        import traceback
        exc = task.exception()
        _log(40, 'exception in task spawned with aiowsgi.spawn():\n' + ''.join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())


def spawn(coro):
    """Schedule coro as a Task on the worker's loop; its exception, if any, is logged."""
    task = _loop.create_task(coro)
    task.add_done_callback(_log_task_exception)
    return task


def _load_app(wsgi_file, module, callable_name):
    try:
        return _load_app_now(wsgi_file, module, callable_name)
    except BaseException as e:
        _reload_note_failure(e)
        raise


def _load_app_now(wsgi_file, module, callable_name):
    import importlib
    import importlib.util
    import os
    import re
    if wsgi_file:
        folder = os.path.dirname(wsgi_file)
        if folder not in _sys.path:
            _sys.path.insert(0, folder)
        # A module name derived from the path, as uWSGI does: never shadows a real module,
        # and sys.modules holds it so frameworks (Flask(__name__)) find their root path.
        name = 'aiowsgi_file_' + re.sub(r'[^0-9A-Za-z_]', '_', wsgi_file)
        spec = importlib.util.spec_from_file_location(name, wsgi_file)
        if spec is None:
            raise ImportError('cannot load %s as a Python file' % wsgi_file)
        mod = importlib.util.module_from_spec(spec)
        _sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            _sys.modules.pop(name, None)
            raise
        where = wsgi_file
    else:
        mod = importlib.import_module(module)
        where = module
    app = getattr(mod, callable_name, None)
    if app is None:
        raise LookupError('%s has no callable named %r' % (where, callable_name))
    if not callable(app):
        raise TypeError('%s.%s is not callable' % (where, callable_name))
    return app


# [app] reload: the source files this worker has loaded, for the master to watch (asked for by
# worker/module_files.cpp after the app import and every few seconds after). The standard
# library and installed packages (site-packages, dist-packages) are left out: they do not
# change while one develops an app, and watching them would cost thousands of watches.
_reload_seen = set()
_reload_skip = None
_reload_failed = []   # files named by a failed import (the module is not in sys.modules)


def _reload_skip_prefixes():
    import os
    import site
    import sysconfig
    dirs = set()
    for key in ('stdlib', 'platstdlib', 'purelib', 'platlib'):
        try:
            dirs.add(sysconfig.get_path(key))
        except Exception:
            pass
    # In a virtualenv: the system's site folders too (the server's greenlet comes from
    # there), and the whole venv, which only installers change.
    for get in (site.getsitepackages, lambda: [site.getusersitepackages()],
                lambda: site.getsitepackages([_sys.base_prefix])):
        try:
            dirs.update(get())
        except Exception:
            pass
    if _sys.prefix != _sys.base_prefix:
        dirs.add(_sys.prefix)
    dirs.update(p for p in _sys.path
                if isinstance(p, str) and p.endswith(('site-packages', 'dist-packages')))
    out = set()
    for d in dirs:
        if d:
            out.add(os.path.join(os.path.abspath(d), ''))
            out.add(os.path.join(os.path.realpath(d), ''))
    return tuple(out)


def _reload_note_failure(exc):
    import traceback
    try:
        if isinstance(exc, SyntaxError) and exc.filename:
            _reload_failed.append(exc.filename)
        for frame in traceback.extract_tb(exc.__traceback__):
            _reload_failed.append(frame.filename)
    except Exception:
        pass


def _reload_new_files(always=()):
    """Absolute paths of the .py files loaded since the last call (and |always|)."""
    import os
    global _reload_skip
    if _reload_skip is None:
        _reload_skip = _reload_skip_prefixes()
    names = []
    for mod in list(_sys.modules.values()):
        try:
            # The module's dict, not getattr: a lazy module object must not import on access.
            f = mod.__dict__.get('__file__')
        except Exception:
            continue
        names.append(f)
    names.extend(_reload_failed)
    del _reload_failed[:]
    out = []
    for f in always:
        if f not in _reload_seen:
            _reload_seen.add(f)
            out.append(f)
    for f in names:
        if not isinstance(f, str) or not f.endswith('.py') or f in _reload_seen:
            continue
        _reload_seen.add(f)
        path = os.path.abspath(f)
        if not path.startswith(_reload_skip):
            out.append(path)
    return out


# ---- preload ([server] preload = true) -----------------------------------------------------
# The preload process imports the app with a loop of its own as the current loop, so
# asyncio.get_event_loop() and aiowsgi.loop() work at import time (run_until_complete too).
# That loop is closed before the workers fork: each worker makes its own (no epoll instance
# or self-pipe is shared), so callbacks and tasks left on it never run, and we say so.

def _preload_begin():
    import gc
    # No collection while the app is imported: it would leave holes in pages that the
    # workers' allocations then fill, unsharing them (the gc.freeze() documentation).
    gc.disable()


def _preload_imported():
    import gc
    globals()['_preload_threads_note']()   # core_threads.py
    loop = _loop
    if loop is not None and not loop.is_closed():
        dropped = len([t for t in _asyncio.all_tasks(loop) if not t.done()])
        dropped += len(getattr(loop, '_ready', ())) + len(getattr(loop, '_scheduled', ()))
        if dropped:
            _log(30, 'preload: %d callback(s) or task(s) scheduled on the import-time event '
                     'loop will not run: each worker has its own loop; start them from a '
                     'request or with aiowsgi.spawn() there' % dropped)
        loop.close()
    # Objects that exist now are moved out of the collector's reach, so collections in the
    # workers do not write to (and unshare) the pages they live in.
    gc.freeze()


def _bind_worker(worker_id, numproc, loop):
    import gc
    global _worker_id, _numproc, _loop
    _worker_id, _numproc, _loop = worker_id, numproc, loop
    globals()['_adopt_loop'](loop)   # core_threads.py
    uwsgi = _sys.modules.get('uwsgi')
    if uwsgi is not None:
        uwsgi.numproc = numproc
    gc.enable()
