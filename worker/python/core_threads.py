# Each core is a thread of its own, the Python half (the C half: thread_identity.cpp, which makes
# threading.get_ident(), current_thread() and threading.local per core). Run once per process
# in the aiowsgi module's namespace, right after aiowsgi_bootstrap.py and before the app is
# imported:
# - threading.Lock() / threading.RLock() made from now on are core-aware: a core that wants a
#   lock another (suspended) core holds suspends until it is released, where a plain lock would
#   block the worker's only thread, and with it the core that holds the lock: a deadlock;
# - asyncio.run() and asgiref's async_to_sync() inside a core run the coroutine on the worker's
#   loop and suspend only the calling core, as aiowsgi.await_() does;
# - asyncio.current_task() inside a core is None: a core is not the task that happened to wake
#   it (asgiref's Local keys on it first);
# - Django's guard against ORM use with a running loop is lifted (DJANGO_ALLOW_ASYNC_UNSAFE),
#   unless the environment sets it: the guard exists because an async context shares one
#   thread's connections, and a core has connections of its own.
# Comments only up here, no docstring: it would replace the module's __doc__.

import _thread
import os as _os
import sys as _sys
import threading as _threading

import greenlet as _greenlet

# From aiowsgi_bootstrap.py and python_module.cpp, already in this namespace.
_log = globals()['_log']
await_ = globals()['await_']
CoreGreenlet = globals()['CoreGreenlet']


def _the_loop():
    """The worker's loop (set anew in each worker forked from a preload process)."""
    return globals()['_loop']


# Captured before the C half replaces them: the thread's own answers.
_real_get_ident = _thread.get_ident
_allocate_lock = _thread.allocate_lock
_worker_ident = _real_get_ident()   # the thread that runs the loop and the cores


def _core_greenlet():
    """The running core's greenlet, or None (a loop callback, another thread, import time)."""
    g = _greenlet.getcurrent()
    return g if type(g) is CoreGreenlet else None


def _wake_waiter(entry, why):
    # entry: [greenlet, state]; state 0 while it waits, then why (1 released, 2 timed out).
    if entry[1] == 0:
        entry[1] = why
        entry[0].switch()


class _CoreLock:
    """threading.Lock in an aiowsgi worker. Between threads it is a plain lock. A core that
    wants it while another core of the worker holds it (that core is suspended: only one
    runs at a time) suspends until it is released, instead of blocking the worker's thread,
    which would keep the holder from ever running again."""

    __slots__ = ('_lock', '_holder', '_waiters', '__weakref__')

    def __init__(self):
        self._lock = _allocate_lock()
        self._holder = None     # the id of the core holding it, if a core of this worker does
        self._waiters = None    # cores waiting for it, in order: [greenlet, state] entries

    def acquire(self, blocking=True, timeout=-1):
        if self._lock.acquire(False):
            self._holder = _held_by()
            return True
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return False
        me = _core_greenlet()
        if me is None or self._holder is None:
            if me is None and self._holder is not None and _real_get_ident() == _worker_ident:
                _log(40, 'a loop callback waits for a threading.Lock held by the request '
                         'suspended on core %d: the worker is blocked until that request '
                         'resumes, which it cannot while the loop waits' % self._holder)
            if not self._lock.acquire(True, timeout):
                return False
            self._holder = _held_by()
            return True
        return self._wait(me, timeout)

    __enter__ = acquire

    def _wait(self, me, timeout):
        entry = [me, 0]
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(entry)
        timer = None
        if timeout is not None and timeout >= 0:
            timer = _the_loop().call_later(timeout, _wake_waiter, entry, 2)
        got = False
        try:
            while True:
                me.parent.switch()
                if entry[1] == 0:
                    continue            # somebody else's wake-up: still waiting
                if self._lock.acquire(False):
                    self._holder = me._aiowsgi_core
                    got = True
                    return True
                if entry[1] == 2:
                    return False        # timed out
                entry[1] = 0            # another core took it first: wait for the next release
        finally:
            waiters.remove(entry)
            if timer is not None:
                timer.cancel()
            # Woken for a release but leaving without the lock (cancelled by harakiri): the
            # next waiter gets that wake-up.
            if not got and waiters and not self._lock.locked():
                self._wake_next()

    def _wake_next(self):
        entry = self._waiters[0]
        if _real_get_ident() == _worker_ident:
            _the_loop().call_soon(_wake_waiter, entry, 1)
        else:
            _the_loop().call_soon_threadsafe(_wake_waiter, entry, 1)

    def release(self):
        self._lock.release()
        self._holder = None
        if self._waiters:
            self._wake_next()

    def __exit__(self, t, v, tb):
        self.release()

    def locked(self):
        return self._lock.locked()

    def _at_fork_reinit(self):
        self._lock._at_fork_reinit()
        self._holder = None
        self._waiters = None

    def __repr__(self):
        return '<%s %s aiowsgi.CoreLock object at %#x>' % (
            'locked' if self._lock.locked() else 'unlocked', type(self).__name__, id(self))


def _held_by():
    g = _core_greenlet()
    return None if g is None else g._aiowsgi_core


class _CoreRLock:
    """threading.RLock in an aiowsgi worker: reentrant per core (each core is a thread of its
    own), waiting like _CoreLock."""

    __slots__ = ('_block', '_owner', '_count', '__weakref__')

    def __init__(self):
        self._block = _CoreLock()
        self._owner = None
        self._count = 0

    def acquire(self, blocking=True, timeout=-1):
        me = _thread.get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if not self._block.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    __enter__ = acquire

    def release(self):
        if self._owner != _thread.get_ident():
            raise RuntimeError('cannot release un-acquired lock')
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def __exit__(self, t, v, tb):
        self.release()

    # What threading.Condition uses when its lock has them.
    def _acquire_restore(self, state):
        self._block.acquire()
        self._count, self._owner = state

    def _release_save(self):
        if self._count == 0:
            raise RuntimeError('cannot release un-acquired lock')
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._block.release()
        return state

    def _is_owned(self):
        return self._owner == _thread.get_ident()

    def _at_fork_reinit(self):
        self._block._at_fork_reinit()
        self._owner = None
        self._count = 0

    def __repr__(self):
        return '<%s %s object owner=%r count=%d at %#x>' % (
            'locked' if self._block.locked() else 'unlocked', type(self).__name__,
            self._owner, self._count, id(self))


# ---- asyncio and asgiref inside a core -------------------------------------------------------

def _patch_asyncio():
    import asyncio
    import asyncio.runners
    import asyncio.tasks
    real_run = asyncio.runners.run
    real_current_task = asyncio.tasks.current_task

    def run(main, *, debug=None):
        if _core_greenlet() is None:
            return real_run(main, debug=debug)
        if not asyncio.iscoroutine(main):
            raise ValueError('a coroutine was expected, got {!r}'.format(main))
        return await_(main)
    run.__doc__ = real_run.__doc__ + (
        '\n\n    In an aiowsgi request core: runs main on the worker\'s loop and suspends only '
        'the calling core, as aiowsgi.await_() does.')

    def current_task(loop=None):
        if loop is None or loop is _the_loop():
            if _core_greenlet() is not None:
                return None
        return real_current_task(loop)
    current_task.__doc__ = real_current_task.__doc__

    asyncio.run = asyncio.runners.run = run
    asyncio.current_task = asyncio.tasks.current_task = current_task


def _patch_asgiref(module):
    cls = getattr(module, 'AsyncToSync', None)
    if cls is None or getattr(cls, '_aiowsgi_patched', False):
        return
    real_call = cls.__call__

    def __call__(self, *args, **kwargs):
        if _core_greenlet() is None:
            return real_call(self, *args, **kwargs)
        return await_(self.awaitable(*args, **kwargs))
    __call__.__doc__ = real_call.__doc__
    cls.__call__ = __call__
    cls._aiowsgi_patched = True


class _AsgirefFinder:
    """Patches asgiref.sync when it is imported (Django imports it lazily)."""

    def find_spec(self, name, path=None, target=None):
        if name != 'asgiref.sync':
            return None
        for finder in _sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        real_exec = getattr(loader, 'exec_module', None)
        if real_exec is None:
            return None

        def exec_module(module):
            real_exec(module)
            _patch_asgiref(module)
            try:
                _sys.meta_path.remove(self)
            except ValueError:
                pass
        loader.exec_module = exec_module
        return spec


def _check_thread_of(loop):
    """asyncio's debug-mode check that the loop is used from its own thread, on the thread's own
    ident (inside a core, get_ident() is the core's)."""
    def _check_thread():
        if loop._thread_id is None:
            return
        if _real_get_ident() != loop._thread_id:
            raise RuntimeError('Non-thread-safe operation invoked on an event loop other '
                               'than the current one')
    return _check_thread


def _adopt_loop(loop):
    import asyncio
    if isinstance(loop, asyncio.BaseEventLoop):
        loop._check_thread = _check_thread_of(loop)


def _install_core_threads():
    _os.environ.setdefault('DJANGO_ALLOW_ASYNC_UNSAFE', 'true')
    # The classes themselves, not factory functions: code keeps them as class attributes
    # (werkzeug: lock_class = threading.Lock), where a function would bind as a method.
    _threading.Lock = _CoreLock
    _threading.RLock = _CoreRLock
    _patch_asyncio()
    mod = _sys.modules.get('asgiref.sync')
    if mod is not None:
        _patch_asgiref(mod)
    else:
        _sys.meta_path.insert(0, _AsgirefFinder())
    if _the_loop() is not None:
        _adopt_loop(_the_loop())


def _preload_threads_note():
    """In the preload process, before the fork: threads do not cross a fork."""
    main = _threading.main_thread()
    for t in _threading.enumerate():
        if t is main or not t.is_alive():
            continue
        _log(30, 'preload: thread %r (%s) was started while the app was imported; it does '
                 'not survive the fork into the workers. Start it in each worker: '
                 'os.register_at_fork(after_in_child=...) or on first use'
                 % (t.name, type(t).__name__))
