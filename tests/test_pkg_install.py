"""The Python package as a package: its version is the engine's, `make test-py` tests the installed copy,
and `pip install tools/python` into a fresh venv gives `import logitlens` with its plots and the
`logitlens-plot` command, offline."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import logitlens

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tools" / "python"


def engine_version():
    m = re.search(r'#define\s+LL_VERSION\s+"([^"]+)"', (ROOT / "include" / "ll_common.h").read_text())
    assert m, "LL_VERSION not found in include/ll_common.h"
    return m.group(1)


def test_version_is_the_engines():
    assert logitlens.__version__ == engine_version()
    m = re.search(r'^version = "([^"]+)"', (PKG / "pyproject.toml").read_text(), re.M)
    assert m and m.group(1) == engine_version()


def test_format_version_matches_the_document():
    title = (ROOT / "docs" / "hdf5-format.md").read_text().splitlines()[0]
    assert title.endswith(f"format version {logitlens.FORMAT_VERSION}") and logitlens.FORMAT == "logitlens.lens"


@pytest.mark.skipif(os.environ.get("LOGITLENS_PKG_INSTALLED") != "1",
                    reason="LOGITLENS_PKG_INSTALLED=1 is set by `make test-py`, which tests the installed package")
def test_tests_use_the_installed_package():
    from importlib.metadata import version

    assert not Path(logitlens.__file__).resolve().is_relative_to(PKG), logitlens.__file__
    assert version("logitlens") == logitlens.__version__
    assert (Path(sys.executable).parent / "logitlens-plot").exists()


def test_fresh_venv_install(tmp_path):
    """pip install tools/python (offline: the dependencies come from the interpreter's site-packages)."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--system-site-packages", str(venv)], check=True, env=env)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", str(PKG)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    code = ("import logitlens, logitlens.plot, logitlens.html, sys; "
            "print(logitlens.__version__, logitlens.FORMAT_VERSION, logitlens.__file__)")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ver, fmt, where = r.stdout.split()
    assert ver == engine_version() and fmt == "1" and str(venv) in where
    r = subprocess.run([str(venv / "bin" / "logitlens-plot"), "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "RUN.h5" in r.stdout
