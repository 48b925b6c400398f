"""What setup.py compiles with mypyc when VITALS_COMPILE=1 (pyproject.toml's
``[tool.vitals] compiled``), where each compiled module's file lies, and a program that
prints the file each module was loaded from."""

from __future__ import annotations

import sysconfig
import tomllib
from pathlib import Path

from tests.deploy.promql import ROOT

COMPILED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["vitals"][
    "compiled"
]
MODULES = [path.removesuffix(".py").replace("/", ".") for path in COMPILED]
# For `python -c SHOW_FILES module...`: one loaded file a line, in the order given.
SHOW_FILES = (
    "import importlib, sys\nfor m in sys.argv[1:]: print(importlib.import_module(m).__file__)"
)


def extension_files(root: Path) -> list[str]:
    """Each compiled module's extension file under ``root`` (a tree or site-packages)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return [str(root / path.removesuffix(".py")) + suffix for path in COMPILED]
