"""wsgiref.validate wraps the app: any PEP 3333 violation by the server lands in the log."""
import pytest

from conftest import APPS, RawConnection


@pytest.fixture(scope="module")
def validated(server_factory):
    return server_factory(APPS / "validator_app.py", workers=1, cores=10)


def test_requests_pass_the_validator(validated):
    status, _, body = validated.request("GET", "/a/path?x=1")
    assert (status, body) == (200, b"validated /a/path")
    status, _, body = validated.request("POST", "/post", body=b"0123456789",
                                        headers={"Content-Type": "text/plain"})
    assert (status, body) == (200, b"0123456789")
    status, _, body = validated.request("GET", "/lines")
    assert (status, body) == (200, b"line one\nline two\n")
    status, headers, body = validated.request("HEAD", "/head")
    assert status == 200 and body == b""
    with RawConnection(validated.port) as conn:  # keep-alive: several requests, one environ each
        for i in range(3):
            resp = conn.request("GET", "/keep/%d" % i)
            assert resp.status == 200 and resp.body == b"validated /keep/%d" % i


def test_log_has_no_validator_complaint(validated):
    validated.request("GET", "/again")
    assert validated.output_lines("validator app loaded") == 1, "app stderr must reach the log"
    assert validated.wait_output_line("validator-app read 10 bytes", timeout=15) == 1, \
        "wsgi.errors output must reach the log"
    log = validated.log_text()
    for complaint in ("AssertionError", "WSGIWarning", "Warning:", "garbage collected",
                      "Traceback"):
        assert complaint not in log, "validator complaint %r in the log:\n%s" % (complaint, log)
