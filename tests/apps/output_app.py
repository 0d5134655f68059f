"""Fixture app: writes to its standard output and error in every way real apps do (print,
.buffer, fileno(), logging, faulthandler, a subprocess, os.write on fd 1 and 2)."""
import faulthandler
import logging
import os
import subprocess
import sys

log = logging.getLogger("outputapp")
logging.basicConfig(level=logging.INFO)
print("output app imported")


def write_print():
    print("printed line")


def write_buffer():
    sys.stdout.buffer.write(b"buffer line\n")
    sys.stdout.buffer.flush()


def write_fileno():
    os.write(sys.stdout.fileno(), b"stdout fd line\n")
    os.write(sys.stderr.fileno(), b"stderr fd line\n")


def write_faulthandler():
    faulthandler.enable()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=False)
    faulthandler.disable()


def write_subprocess():
    subprocess.run(["echo", "subprocess line"], stdout=sys.stdout, check=True)
    subprocess.run(["sh", "-c", "echo subprocess stderr line >&2"], check=True)


def write_logging():
    log.info("logging info line")


def write_big():
    # More than a pipe holds (64 KiB), in one request, before the loop runs again.
    sys.stdout.write(("x" * 1023 + "\n") * 1024)
    sys.stdout.write("big write done\n")


def write_big_subprocess():
    # A child the app waits for writes 1 MiB to the inherited fd 1.
    subprocess.run(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' 'y' | fold -w 1023; echo"],
                   check=True)
    print("big subprocess done")


def write_json_text():
    print('quote " backslash \\ tab \t caf\u00e9')


ROUTES = {"/print": write_print, "/buffer": write_buffer, "/fileno": write_fileno,
          "/faulthandler": write_faulthandler, "/subprocess": write_subprocess,
          "/logging": write_logging, "/big": write_big, "/big-subprocess": write_big_subprocess,
          "/json-text": write_json_text}


def application(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is not None:
        route()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
