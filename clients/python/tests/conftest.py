"""Fixtures: a real spoold per test module (binary in $SPOOLD), started on
port 0 in a temporary directory; its port comes from --port-file."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
try:
    import spool  # noqa: F401  (installed, as in tests/python-sdk/run-suite)
except ImportError:  # a checkout without an install
    sys.path.insert(0, PKG)

START_TIMEOUT = 15.0


def wait_for(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    """Polls cond() until it returns something true, or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(step)


class Spoold:
    def __init__(self, extra: Optional[List[str]] = None) -> None:
        path = os.environ.get("SPOOLD")
        if not path or not os.access(path, os.X_OK):
            pytest.fail("set SPOOLD to the spoold binary (e.g. build-test/broker/spoold); got %r" % path)
        self.path = path
        self.dir = tempfile.mkdtemp(prefix="spool-py-")
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.data)
        self.extra = list(extra or [])
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return "spool://127.0.0.1:%d" % self.port

    def start(self, port: int = 0) -> None:
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        args = [self.path, "--port", str(port), "--bind", "127.0.0.1", "--port-file", port_file,
                "--data-dir", self.data, "--http-port", "0", "--loglevel", "warn",
                "--logfile", os.path.join(self.dir, "spoold.log")] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr.log"), "ab"))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail("spoold exited with %s before listening; log:\n%s" % (self.proc.returncode, self.log()))
            try:
                with open(port_file) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text)
                    return
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail("spoold wrote no port file within %g s; log:\n%s" % (START_TIMEOUT, self.log()))
            time.sleep(0.01)

    def log(self) -> str:
        out = ""
        for name in ("spoold.log", "stderr.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out += f.read()[-4000:]
            except OSError:
                pass
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Stops it and starts it again on the same port and data."""
        port = self.port
        self.stop()
        self.start(port)

    def cleanup(self) -> None:
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def spoold():
    s = Spoold()
    s.start()
    yield s
    s.cleanup()


@pytest.fixture
def qname() -> str:
    return "q-" + uuid.uuid4().hex[:10]


@pytest.fixture
def queue(spoold, qname):
    from spool import Queue
    q = Queue(qname, connection=spoold.url)
    yield q
    q.close()
