"""The build's one addition to pyproject.toml: with VITALS_COMPILE=1, the pure hot path
(the modules ``[tool.vitals] compiled`` lists there) is compiled to C extensions with
mypyc, the compiler mypy ships.

The same source, type-checked under mypy's strict settings, runs the backtest about a
fifth faster (docs/backtest.md); a scoring instance's re-scores gain as much. The image
is built this way; a development install stays pure Python. Compiling needs mypy (pinned
in constraints.txt), a C compiler and Python's headers, and ``--no-build-isolation``:
mypy reads the types of the installed dependencies.

    VITALS_COMPILE=1 pip wheel --no-build-isolation --no-deps --wheel-dir dist .
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildCompiled(build_ext):
    """Refuses compiled modules beside the sources: they would shadow later edits."""

    def run(self) -> None:
        if self.extensions and (self.inplace or getattr(self, "editable_mode", False)):
            raise SystemExit(
                "VITALS_COMPILE=1 builds wheels only: compiled modules in the source tree "
                "would keep running after the sources beside them change"
            )
        super().run()


def ext_modules() -> list[Any]:
    if os.environ.get("VITALS_COMPILE", "0") != "1":
        return []
    from mypyc.build import mypycify  # only a compiling build needs mypy

    with (Path(__file__).parent / "pyproject.toml").open("rb") as project:
        compiled = tomllib.load(project)["tool"]["vitals"]["compiled"]
    return mypycify(compiled, opt_level="3", debug_level="0")


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildCompiled})
