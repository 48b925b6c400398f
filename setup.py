"""The build's one addition to pyproject.toml: with VITALS_COMPILE=1, the pure hot path
(the modules ``[tool.vitals] compiled`` lists there) is compiled to C extensions with
mypyc, the compiler mypy ships.

The same source, type-checked under mypy's strict settings, replays a backtest in about
four fifths of the time (docs/backtest.md). The image is built this way; a development
install stays pure Python. Compiling needs mypy and setuptools (pinned in
constraints.txt), a C compiler and Python's headers, and ``--no-build-isolation``:
mypy reads the types of the installed dependencies. ``make wheel`` runs it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
# A compiled build's own directory, emptied first: an extension left by an earlier
# build would ship beside, and override, the module now listed or not.
COMPILED_BUILD = "build/compiled"
REFUSED = (
    "VITALS_COMPILE=1 builds wheels only: compiled modules in the source tree would keep "
    "running after the sources beside them change"
)
# setuptools' commands that only write metadata: nothing to compile for them.
METADATA_COMMANDS = {"egg_info", "dist_info"}


class BuildCompiled(build_ext):
    """Refuses compiled modules beside the sources (``build_ext --inplace``)."""

    def run(self) -> None:
        if self.inplace:
            raise SystemExit(REFUSED)
        super().run()


def compiling() -> bool:
    if os.environ.get("VITALS_COMPILE", "0") != "1":
        return False
    if {"editable_wheel", "develop"} & set(sys.argv):  # an editable install builds in place
        raise SystemExit(REFUSED)
    return not set(sys.argv) & METADATA_COMMANDS


def ext_modules() -> list[Any]:
    from mypyc.build import mypycify  # only a compiling build needs mypy

    shutil.rmtree(HERE / COMPILED_BUILD, ignore_errors=True)
    with (HERE / "pyproject.toml").open("rb") as project:
        compiled = tomllib.load(project)["tool"]["vitals"]["compiled"]
    return mypycify(compiled, opt_level="3", debug_level="0", target_dir=f"{COMPILED_BUILD}/c")


if compiling():
    setup(
        ext_modules=ext_modules(),
        cmdclass={"build_ext": BuildCompiled},
        options={"build": {"build_base": COMPILED_BUILD}},
    )
else:
    setup()
