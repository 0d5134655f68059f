# The server's own packages inside a virtualenv ([app] virtualenv), run by
# worker/python/virtualenv.cpp right after the interpreter starts, before anything imports
# greenlet. A venv made without the system's site-packages sees none of the system's
# packages, yet the workers need greenlet (its C API drives the cores) and, with
# loop = "uvloop", uvloop. A finder placed last on sys.meta_path finds exactly those
# top-level names in the base interpreter's site folders, and only when nothing on the
# venv's own path has them: the app sees nothing else of the system's, and a copy the venv
# holds is used (and checked against the greenlet the server was built against).
import sys as _sys


class ServerPackages:
    """Finds the server's own top-level packages in the system's site folders."""

    def __init__(self, names, dirs):
        self._names = frozenset(names)
        self._dirs = list(dirs)

    def find_spec(self, name, path=None, target=None):
        # Submodules (greenlet._greenlet) are found through their package's __path__.
        if path is not None or name not in self._names:
            return None
        from importlib.machinery import PathFinder
        return PathFinder.find_spec(name, self._dirs)

    def invalidate_caches(self):
        pass


def _install(names, built_greenlet):
    """Puts the finder in place and imports greenlet; ImportError naming both versions when
    the venv's own greenlet is not the one the server was built against."""
    import os
    import site
    dirs = [d for d in site.getsitepackages([_sys.base_prefix]) if os.path.isdir(d)]
    _sys.meta_path.append(ServerPackages(names, dirs))
    import greenlet
    here = os.path.dirname(os.path.dirname(os.path.abspath(greenlet.__file__ or '')))
    version = getattr(greenlet, '__version__', 'of unknown version')
    if here not in [os.path.abspath(d) for d in dirs] and version != built_greenlet:
        raise ImportError(
            'the virtualenv %s holds greenlet %s (%s), but aiowsgi was built against greenlet '
            '%s: uninstall it from the venv (the server provides its own), or install '
            'greenlet==%s' % (_sys.prefix, version, here, built_greenlet, built_greenlet))
