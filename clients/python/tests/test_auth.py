"""A broker with --requirepass: the password travels in the URL."""
from __future__ import annotations

import pytest

from conftest import Spoold, wait_for
from spool import AuthError, Queue, Worker


@pytest.fixture(scope="module")
def locked():
    s = Spoold(["--requirepass", "s3cret"])
    s.start()
    yield s
    s.cleanup()


def test_password_in_the_url(locked, qname):
    with Queue(qname, connection="spool://:s3cret@127.0.0.1:%d" % locked.port) as q:
        job = q.add({"n": 1})
        seen = []
        w = Worker(q, lambda j: seen.append(j.id))
        w.start()
        try:
            wait_for(lambda: seen == [job.id], 10, "the job")
        finally:
            w.close(10)
        assert q.get_job(job.id).state == "done"


def test_missing_or_wrong_password_is_an_auth_error(locked, qname):
    with Queue(qname, connection="spool://127.0.0.1:%d" % locked.port) as q:
        with pytest.raises(AuthError, match="(?i)auth"):
            q.add({})
    with Queue(qname, connection="spool://:wrong@127.0.0.1:%d" % locked.port) as q:
        with pytest.raises(AuthError):
            q.add({})
