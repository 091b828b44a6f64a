#!/usr/bin/python3
"""python-image-resize - a spool worker that makes thumbnails of the jobs of
queue `thumbnails` with Pillow (the Python twin of examples/image-resize).

Payload: {"src": "in.jpg", "dst": "out.png", "width": 200}. The output is
`width` pixels wide with the source's aspect ratio, in the format dst's
extension names (.jpg, .png, .webp, ... whatever this Pillow saves). It is
written next to dst under a temporary name and renamed into place, so a
reader never sees half an image; running a job twice (at-least-once
delivery) just writes the same file again. The job's result is
{"dst": ..., "width": ..., "height": ...}.

Outcome: done; or dead at once (UnrecoverableError) with a clear
last_error when the payload is wrong, the source is missing or not a
readable image, or the output cannot be written. Nothing here is worth
retrying: a missing file does not appear by waiting.

Settings, flag or environment: --url / SPOOL_URL, --concurrency N,
--queue NAME. Stops cleanly on SIGTERM/SIGINT.

Threads: Pillow releases the GIL while it decodes, resizes and encodes, so
threads help; for CPU-bound work set --concurrency to the number of cores.
"""
import argparse
import logging
import os
import sys
import threading

from PIL import Image, UnidentifiedImageError

try:
    from spool import UnrecoverableError, Worker
except ImportError:  # running from a checkout without `pip install ./clients/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    from spool import UnrecoverableError, Worker

MAX_WIDTH = 10000


def resize(job):
    data = job.data
    if not isinstance(data, dict):
        raise UnrecoverableError("payload must be a JSON object with \"src\", \"dst\" and \"width\"")
    src, dst, width = data.get("src"), data.get("dst"), data.get("width")
    if not isinstance(src, str) or not src:
        raise UnrecoverableError("payload field 'src' is missing or not a string")
    if not isinstance(dst, str) or not dst:
        raise UnrecoverableError("payload field 'dst' is missing or not a string")
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise UnrecoverableError("payload field 'width' must be an integer from 1 to %d, not %r" % (MAX_WIDTH, width))
    ext = os.path.splitext(dst)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise UnrecoverableError("cannot write %s: Pillow saves no format for the extension %r" % (dst, ext))
    try:
        with Image.open(src) as im:
            im.load()
            height = max(1, round(im.height * width / im.width))
            out = im.resize((width, height), Image.LANCZOS)
    except FileNotFoundError as e:
        raise UnrecoverableError("source image %s: %s" % (src, e.strerror)) from None
    except UnidentifiedImageError:
        raise UnrecoverableError("cannot read %s as an image: not a format Pillow knows" % src) from None
    except OSError as e:
        raise UnrecoverableError("cannot read %s as an image: %s" % (src, e)) from None
    if fmt == "JPEG" and out.mode not in ("RGB", "L"):
        out = out.convert("RGB")
    tmp = os.path.join(os.path.dirname(os.path.abspath(dst)),
                       ".%s.%s.tmp%s" % (os.path.basename(dst), threading.get_ident(), ext))
    try:
        out.save(tmp, format=fmt)
        os.replace(tmp, dst)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UnrecoverableError("cannot write %s: %s" % (dst, e.strerror or e)) from None
    return {"dst": dst, "width": width, "height": height}


def main(argv=None):
    p = argparse.ArgumentParser(description="Resize the images named by the jobs of a spool queue.")
    p.add_argument("--url", default=os.environ.get("SPOOL_URL", "spool://127.0.0.1:7379"))
    p.add_argument("--queue", default="thumbnails")
    p.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="python-image-resize: %(levelname)s: %(message)s")
    worker = Worker(a.queue, resize, connection=a.url, concurrency=a.concurrency, name="python-image-resize")
    return 0 if worker.run() else 1


if __name__ == "__main__":
    sys.exit(main())
