"""Packages whose public names load on first use (PEP 562).

``kanx`` and its stage packages re-export names from submodules that import torch, sympy or
matplotlib. Loading them lazily keeps ``import kanx`` and the CLI's ``--help`` fast, and lets a
light submodule (a settings class, a vocabulary) be imported without its heavy siblings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to the module
    that defines it; the module is imported when the name is first read, and the value is then
    cached in the package's namespace."""
    namespace = importlib.import_module(package).__dict__

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return getattr_, dir_
