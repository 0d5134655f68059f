# The Python half of the built-in `uwsgi` module: uWSGI's async-mode suspend() and what it
# waits for, which live on the worker's loop. Embedded in the worker at build time and run
# while the module is created, in its namespace, after the C half (uwsgi_module.cpp)
# has defined its functions and `opt` there. Comments only up here, no docstring: it would
# replace the module's __doc__.

import aiowsgi as _aiowsgi
import greenlet as _greenlet

# The C half's functions, already in this namespace (named here so linters know them).
_token = globals()['_token']                      # (core id, request serial) or None
_release_reader = globals()['_release_reader']    # the server's reader steps off fd

numproc = _aiowsgi._numproc


def worker_id():
    """This worker's id, counting from 1."""
    return _aiowsgi.worker_id()


class _Waits:
    """What the current request asked suspend() to wait for (uWSGI's async mode)."""
    __slots__ = ('token', 'fds', 'timeout', 'ready')

    def __init__(self, token):
        self.token = token
        self.fds = []
        self.timeout = None
        self.ready = -1


_waits = {}  # core id -> _Waits of its current request


def _current(what):
    token = _token()
    if token is None:
        raise RuntimeError('uwsgi.%s() must be called from inside a request, not at import '
                           'time or from a loop callback' % what)
    w = _waits.get(token[0])
    if w is None or w.token != token:
        w = _waits[token[0]] = _Waits(token)
    return w


def _fileno(fd):
    return fd if isinstance(fd, int) else fd.fileno()


def wait_fd_read(fd, timeout=0):
    """Make the next suspend() return when fd is readable (or after timeout seconds, if > 0)."""
    w = _current('wait_fd_read')
    w.fds.append((_fileno(fd), False))
    if timeout and timeout > 0:
        w.timeout = timeout
    return b''


def wait_fd_write(fd, timeout=0):
    """Make the next suspend() return when fd is writable (or after timeout seconds, if > 0)."""
    w = _current('wait_fd_write')
    w.fds.append((_fileno(fd), True))
    if timeout and timeout > 0:
        w.timeout = timeout
    return b''


def async_sleep(seconds):
    """Make the next suspend() return after seconds."""
    w = _current('async_sleep')
    w.timeout = max(0.0, float(seconds))
    return b''


def ready_fd():
    """The fd that ended the last suspend(), or -1 (timeout, or resumed by a callback)."""
    return _current('ready_fd').ready


def suspend():
    """Suspend this core (only it: the loop and the other cores go on) until an fd given to
    wait_fd_read/wait_fd_write is ready, the async_sleep/wait timeout passes, or a callback
    switches into the core's greenlet. With nothing registered, only such a switch resumes it.
    """
    w = _current('suspend')
    me = _greenlet.getcurrent()
    loop = _aiowsgi.loop()
    fds, timeout = w.fds, w.timeout
    w.fds, w.timeout, w.ready = [], None, -1
    waiting = [True]

    def wake(fd):
        if waiting[0]:
            waiting[0] = False
            w.ready = fd
            me.switch()

    added = []
    timer = None
    try:
        for fd, write in fds:
            if write:
                loop.add_writer(fd, wake, fd)
            else:
                _release_reader(fd)
                loop.add_reader(fd, wake, fd)
            added.append((fd, write))
        if timeout is not None:
            timer = loop.call_later(timeout, wake, -1)
        me.parent.switch()
    finally:
        waiting[0] = False
        for fd, write in added:
            if write:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()
