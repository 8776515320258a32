"""Loading the library, versions, the command line, and the error when it is missing."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import detloss
from conftest import PYDIR, REPO


def _cmake_version():
    """The version as CMakeLists.txt writes it (None outside a source checkout)."""
    path = os.path.join(REPO, "CMakeLists.txt")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return re.search(r"project\(\s*detloss\s+VERSION\s+([0-9.]+)", f.read()).group(1)


def test_the_package_and_the_library_report_the_same_version():
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", detloss.__version__)
    assert detloss.library_version() == detloss.__version__
    assert _cmake_version() in (None, detloss.__version__)
    assert os.path.exists(detloss.library_path) or detloss.library_path.startswith("lib")


def test_python_m_detloss_version_prints_both_versions_and_the_library_path():
    r = subprocess.run([sys.executable, "-m", "detloss", "--version"], capture_output=True,
                       text=True, cwd=PYDIR, env=dict(os.environ, PYTHONPATH=PYDIR))
    assert r.returncode == 0, r.stderr
    v = detloss.__version__
    assert r.stdout.startswith("detloss %s (library %s, " % (v, v))
    assert detloss.library_path in r.stdout


def test_a_bad_detloss_library_path_is_an_import_error_naming_it(tmp_path):
    bogus = tmp_path / "nope.so"
    r = subprocess.run([sys.executable, "-c", "import detloss"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=PYDIR, DETLOSS_LIBRARY=str(bogus)))
    assert r.returncode != 0
    assert "ImportError" in r.stderr and str(bogus) in r.stderr


def test_without_any_library_the_error_lists_every_place_it_looked(tmp_path):
    # a copy of the package outside the source tree, no env var, nothing on the system path
    shutil.copytree(os.path.join(PYDIR, "detloss"), tmp_path / "detloss",
                    ignore=shutil.ignore_patterns("libdetloss.so*", "__pycache__", "data"))
    env = {k: v for k, v in os.environ.items() if k not in ("DETLOSS_LIBRARY", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import detloss"], capture_output=True, text=True,
                       env=env, cwd=str(tmp_path))
    if r.returncode == 0:
        pytest.skip("libdetloss is installed system-wide: the search cannot fail")
    assert "libdetloss.so not found" in r.stderr
    assert "DETLOSS_LIBRARY: (not set)" in r.stderr
    assert "system library path" in r.stderr


def test_the_package_installs_offline_with_pip_and_finds_the_library_next_to_it(tmp_path):
    env = dict(os.environ, DETLOSS_LIBRARY=detloss.library_path)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                        "--no-deps", "--no-index", "--quiet", "--target", str(tmp_path / "site"),
                        PYDIR], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("no pip in this interpreter")
    assert r.returncode == 0, r.stderr[-2000:]
    for d in ("build", "detloss.egg-info"):  # leave the source tree clean
        shutil.rmtree(os.path.join(PYDIR, d), ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "DETLOSS_LIBRARY"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    r = subprocess.run([sys.executable, "-c", "import detloss; print(detloss.library_path); "
                        "print(detloss.anchor_presets())"], capture_output=True, text=True,
                       env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(tmp_path / "site" / "detloss" / "libdetloss.so")
    assert "torchvision_retinanet" in r.stdout
