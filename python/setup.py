"""Build hook of the detloss Python package (pyproject.toml holds the metadata).

At build time it copies into the package, when they are available:
  - the shared library named by DETLOSS_LIBRARY (e.g. build/libdetloss.so), so the
    installed package finds it next to itself;
  - the presets and the bundled data of the source tree as package data:
    detloss/data/{configs,anchors,data} (../configs/*.json, ../anchors/*.json,
    ../data/*.json + its README with the data's license), the layout of the
    installed share/detloss, so detloss.load_config("NAME") and a config's
    "anchors" / "dataset" resolve after `pip install`.
The package's version is the library's: read from project(detloss VERSION ...) in
../CMakeLists.txt, the one place it is written (pyproject.toml declares it dynamic).
Nothing is compiled.
"""
import glob
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def cmake_version():
    path = os.path.join(REPO, "CMakeLists.txt")
    try:
        with open(path) as f:
            m = re.search(r"project\(\s*detloss\s+VERSION\s+([0-9]+\.[0-9]+\.[0-9]+)", f.read())
    except OSError as e:
        raise RuntimeError("detloss: the version comes from %s: %s" % (path, e)) from e
    if not m:
        raise RuntimeError("detloss: no project(detloss VERSION x.y.z) in %s" % path)
    return m.group(1)


class BuildPy(build_py):
    def run(self):
        super().run()
        pkg = os.path.join(self.build_lib, "detloss")
        lib = os.environ.get("DETLOSS_LIBRARY")
        if lib and os.path.isfile(lib):
            # keep the SONAME-less name: the loader looks for libdetloss.so* next to the package
            shutil.copy2(os.path.realpath(lib), os.path.join(pkg, "libdetloss.so"))
        for sub in ("anchors", "configs", "data"):
            files = glob.glob(os.path.join(REPO, sub, "*.json"))
            if sub == "data":
                files += glob.glob(os.path.join(REPO, sub, "README.md"))
            if files:
                dst = os.path.join(pkg, "data", sub)
                os.makedirs(dst, exist_ok=True)
                for f in files:
                    shutil.copy2(f, dst)


setup(version=cmake_version(), cmdclass={"build_py": BuildPy})
