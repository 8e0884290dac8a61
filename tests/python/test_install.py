"""The two documented ways to install the package work: meson install
(system-wide) and pip install of the checkout into a virtualenv. Each
installed package is imported from outside the source tree and talks to
a real broker; it needs no libringmq at run time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BUILD = os.environ.get("RINGMQ_BUILD_ROOT", "")
SOURCE = os.environ.get("RINGMQ_SOURCE_ROOT", "")

CHECK = """
import sys, ringmq
assert "{root}" in ringmq.__file__, ringmq.__file__
with ringmq.Client(sys.argv[1]) as c:
    c.create_queue("installed")
    p = c.publish("installed", b"hello")
    with c.consume("installed", "g", timeout=5) as jobs:
        job = next(jobs)
        assert job.payload == b"hello"
        job.ack()
print("ok", ringmq.__version__)
"""


def run_check(python: str, root: Path, addr: str,
              env: dict[str, str]) -> None:
    out = subprocess.run([python, "-c", CHECK.format(root=root), addr],
                         cwd="/", env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


def no_libringmq(pkg: Path) -> None:
    ext = next(pkg.glob("_ringmq*.so"))
    ldd = subprocess.run(["ldd", str(ext)], capture_output=True, text=True,
                         timeout=30)
    assert ldd.returncode == 0, ldd.stderr
    assert "libringmq" not in ldd.stdout


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_meson_install(broker, tmp_path):
    if not BUILD:
        pytest.skip("RINGMQ_BUILD_ROOT is not set (run through meson test)")
    dest = tmp_path / "root"
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild",
                        "--tags", "python-runtime", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pkgs = list(dest.rglob("ringmq/__init__.py"))
    assert len(pkgs) == 1, pkgs
    pkg = pkgs[0].parent
    # Installed for real, it lands where this interpreter looks.
    site = str(pkg.parent)[len(str(dest)):]
    assert site in sys.path, (site, sys.path)
    assert (pkg / "py.typed").exists() and (pkg / "_ringmq.pyi").exists()
    no_libringmq(pkg)
    env = clean_env()
    env["PYTHONPATH"] = str(pkg.parent)
    run_check(sys.executable, pkg.parent, broker.addr, env)


def test_pip_install_into_a_virtualenv(broker, tmp_path):
    if not SOURCE:
        pytest.skip("RINGMQ_SOURCE_ROOT is not set (run through meson test)")
    # A copy of what the package is built from: pip builds in the tree it
    # is given, and the checkout stays untouched.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("meson.build", "meson_options.txt", "pyproject.toml",
                 "README.md"):
        shutil.copy(Path(SOURCE) / name, src / name)
    for name in ("proto", "libclient", "python"):
        shutil.copytree(Path(SOURCE) / name, src / name)
    venv = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv",
                        "--system-site-packages", str(venv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index",
                        "--no-build-isolation", str(src)],
                       capture_output=True, text=True, timeout=280,
                       env=clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    pkgs = list(venv.rglob("site-packages/ringmq/__init__.py"))
    assert len(pkgs) == 1, pkgs
    no_libringmq(pkgs[0].parent)
    run_check(str(venv / "bin" / "python"), venv, broker.addr, clean_env())
