"""examples/python-email and examples/python-image-resize, run as processes
against a real spoold (and, for email, a local SMTP sink on aiosmtpd)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import PKG, wait_for

ROOT = os.path.dirname(os.path.dirname(PKG))
SINK = os.path.join(ROOT, "tests", "sdk", "smtp_sink.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def _run(args, tmp_path, name):
    out = open(str(tmp_path / (name + ".out")), "wb")
    env = dict(os.environ, PYTHONPATH=PKG + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(proc, tmp_path, name):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode, (tmp_path / (name + ".out")).read_text(errors="replace")


def test_python_email_example(spoold, queue, tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    port_file = tmp_path / "smtp.port"
    sink = _run([SYSTEM_PYTHON, SINK, str(port_file), str(mail)], tmp_path, "sink")
    worker = None
    try:
        wait_for(lambda: port_file.exists(), 15, "the SMTP sink's port file")
        smtp_port = int(port_file.read_text())
        queue.configure(backoff=0.05, backoff_max=0.05)
        ok = [queue.add({"to": "user%d@example.com" % i, "subject": "hi %d" % i, "body": "body %d" % i}).id
              for i in range(5)]
        flaky = queue.add({"to": "flaky@example.com", "subject": "later", "body": "greylisted once"}).id
        reject = queue.add({"to": "reject@example.com", "subject": "no", "body": "x"}).id
        bad = queue.add({"to": "a@example.com", "subject": "no body"}).id
        worker = _run([sys.executable, os.path.join(ROOT, "examples", "python-email", "worker.py"),
                       "--url", spoold.url, "--queue", queue.name, "--smtp", "smtp://127.0.0.1:%d" % smtp_port,
                       "--from", "shop@example.com", "--concurrency", "3"], tmp_path, "worker")
        wait_for(lambda: all(queue.get_job(i).state in ("done", "dead") for i in ok + [flaky, reject, bad]),
                 30, "every email job to finish")
        rc, out = _stop(worker, tmp_path, "worker")
        assert rc == 0, out
        msgs = [p.read_text() for p in mail.glob("*.eml")]
        for i in ok + [flaky]:
            assert queue.get_job(i).state == "done", out
            assert sum("X-Spool-Job: %s" % i in m for m in msgs) == 1, "job %s not delivered exactly once" % i
        assert len(msgs) == 6
        assert queue.get_job(flaky).attempt == 2
        r = queue.get_job(reject)
        assert r.state == "dead" and r.last_error.startswith("550 5.1.1 <reject@example.com>"), r.last_error
        b = queue.get_job(bad)
        assert b.state == "dead" and b.last_error == "payload field 'body' is missing or not a string"
        first = next(m for m in msgs if "X-Spool-Job: %s" % ok[0] in m)
        assert "Message-ID: <%s@spool>" % ok[0] in first and "Subject: hi 0" in first
    finally:
        if worker is not None:
            _stop(worker, tmp_path, "worker")
        _stop(sink, tmp_path, "sink")


def test_python_image_resize_example(spoold, queue, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    src = tmp_path / "in.png"
    Image.new("RGB", (400, 200), (200, 30, 30)).save(str(src))
    (tmp_path / "not-an-image.jpg").write_text("hello")
    jobs = {
        "jpg": queue.add({"src": str(src), "dst": str(tmp_path / "out.jpg"), "width": 100}).id,
        "webp": queue.add({"src": str(src), "dst": str(tmp_path / "out.webp"), "width": 40}).id,
        "missing": queue.add({"src": str(tmp_path / "nope.png"), "dst": str(tmp_path / "x.png"), "width": 10}).id,
        "garbage": queue.add({"src": str(tmp_path / "not-an-image.jpg"), "dst": str(tmp_path / "y.png"),
                              "width": 10}).id,
        "width": queue.add({"src": str(src), "dst": str(tmp_path / "z.png"), "width": 0}).id,
    }
    worker = _run([sys.executable, os.path.join(ROOT, "examples", "python-image-resize", "worker.py"),
                   "--url", spoold.url, "--queue", queue.name, "--concurrency", "2"], tmp_path, "worker")
    try:
        wait_for(lambda: all(queue.get_job(i).state in ("done", "dead") for i in jobs.values()), 30,
                 "every resize job to finish")
    finally:
        rc, out = _stop(worker, tmp_path, "worker")
    assert rc == 0, out
    assert queue.get_job(jobs["jpg"]).state == "done"
    with Image.open(str(tmp_path / "out.jpg")) as im:
        assert im.format == "JPEG" and im.size == (100, 50)
    with Image.open(str(tmp_path / "out.webp")) as im:
        assert im.format == "WEBP" and im.size == (40, 20)
    assert queue.get_job(jobs["missing"]).last_error == \
        "source image %s: No such file or directory" % (tmp_path / "nope.png")
    assert queue.get_job(jobs["garbage"]).last_error.startswith("cannot read %s as an image" % (tmp_path / "not-an-image.jpg"))
    assert "'width' must be an integer" in queue.get_job(jobs["width"]).last_error
    assert not [p for p in os.listdir(str(tmp_path)) if p.endswith(".tmp.png") or ".tmp" in p]
