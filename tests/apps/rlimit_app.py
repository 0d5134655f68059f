# Answers with the worker's open-file limit, "SOFT HARD": what the master leaves its workers.
import resource


def application(environ, start_response):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b"%d %d" % (soft, hard)]
