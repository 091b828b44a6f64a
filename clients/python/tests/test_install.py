"""`pip install ./clients/python` into a fresh venv, then import and use it."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import PKG

SYSTEM_PYTHON = "/usr/bin/python3"


def test_pip_install_into_a_fresh_venv(tmp_path, spoold):
    venv = tmp_path / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = subprocess.run([py, "-m", "pip", "install", PKG], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    code = (
        "import spool, os, sys\n"
        "assert os.path.realpath(spool.__file__).startswith(os.path.realpath(sys.prefix)), spool.__file__\n"
        "assert os.path.exists(os.path.join(os.path.dirname(spool.__file__), 'py.typed'))\n"
        "q = spool.Queue('install-check', connection=sys.argv[1])\n"
        "j = q.add({'hello': 'world'})\n"
        "print(q.get_job(j.id).data['hello'])\n"
    )
    r = subprocess.run([py, "-c", code, spoold.url], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "world"
    r = subprocess.run([py, "-m", "pip", "show", "spool-client"], capture_output=True, text=True)
    assert "Requires: redis" in r.stdout, r.stdout
