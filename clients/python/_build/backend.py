"""backend.py - a PEP 517 build backend for spool-client, standard library only.

pip builds `pip install ./clients/python` in an isolated environment and
installs the backend's requirements there first; with `requires = []` it
needs nothing from a package index. This backend knows exactly one project:
it reads name, version, description, dependencies and the package list from
pyproject.toml and writes a pure-Python wheel (py3-none-any), an sdist, or
an editable wheel (a .pth file pointing at this directory).
"""
import base64
import hashlib
import io
import os
import tarfile
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = tomllib.load(f)
    return data["project"], data.get("tool", {}).get("spool-build", {})


def _dist_name(project):
    return project["name"].replace("-", "_")


def _metadata(project):
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % project["name"],
        "Version: %s" % project["version"],
        "Summary: %s" % project.get("description", ""),
    ]
    if "requires-python" in project:
        lines.append("Requires-Python: %s" % project["requires-python"])
    lic = project.get("license", {}).get("text")
    if lic:
        lines.append("License: %s" % lic)
    for c in project.get("classifiers", []):
        lines.append("Classifier: %s" % c)
    for dep in project.get("dependencies", []):
        lines.append("Requires-Dist: %s" % dep)
    body = ""
    readme = project.get("readme")
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _wheel_text():
    return "Wheel-Version: 1.0\nGenerator: spool-build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files(packages):
    for pkg in packages:
        base = os.path.join(ROOT, pkg)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(dirpath, name)
                yield full, os.path.relpath(full, ROOT).replace(os.sep, "/")


def _write_wheel(wheel_directory, files):
    """files: list of (archive name, bytes); adds dist-info and RECORD."""
    project, _ = _project()
    dist = _dist_name(project)
    version = project["version"]
    info = "%s-%s.dist-info" % (dist, version)
    files = list(files) + [
        (info + "/METADATA", _metadata(project).encode("utf-8")),
        (info + "/WHEEL", _wheel_text().encode()),
        (info + "/top_level.txt", "".join(p + "\n" for p in _project()[1].get("packages", [])).encode()),
    ]
    record = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append(info + "/RECORD,,")
    filename = "%s-%s-py3-none-any.whl" % (dist, version)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
        z.writestr(info + "/RECORD", "\n".join(record) + "\n")
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _, tool = _project()
    files = []
    for full, arc in _package_files(tool.get("packages", [])):
        with open(full, "rb") as f:
            files.append((arc, f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    project, _ = _project()
    pth = "__editable__.%s.pth" % _dist_name(project)
    return _write_wheel(wheel_directory, [(pth, (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    project, tool = _project()
    base = "%s-%s" % (_dist_name(project), project["version"])
    filename = base + ".tar.gz"
    names = ["pyproject.toml", "README.md", "_build/backend.py"]
    names += [arc for _, arc in _package_files(tool.get("packages", []))]
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for arc in names:
            tar.add(os.path.join(ROOT, arc), arcname=base + "/" + arc)
        pkg_info = _metadata(project).encode("utf-8")
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        tar.addfile(ti, io.BytesIO(pkg_info))
    return filename
