"""gurux_dlms's packages loaded on demand: the modules meterd uses, not all 398 of them.

gurux_dlms 1.0.203's package ``__init__`` files re-export every module of their package, so
``import gurux_dlms`` loads the client, the XML translator, the PLC and M-Bus types and the rest:
about 16 MiB of resident memory in a meter whose budget is 100 MiB with power quality on.

:func:`install` puts a :class:`LazyPackage` in ``sys.modules`` for every gurux_dlms package whose
``__init__`` only re-exports (``from .Module import Name [as Alias]``, constant assignments); the
module behind a name is imported the first time the name is read. Packages whose ``__init__``
does anything else (``import *``, code) are left to the normal import. What callers see does not
change: ``from gurux_dlms import GXByteBuffer``, ``gurux_dlms.objects.GXDLMSData`` and
``import gurux_dlms.enums.ErrorCode`` give the same objects as with the eager packages, and a
package's re-exported name (the class ``ErrorCode``) wins over its submodule of the same name, as
it does when ``__init__`` runs. A test compares every name of every package with an eager import.

:func:`install` must run before anything imports gurux_dlms; ``meterd.cosem`` calls it first
thing. When gurux_dlms is already imported it changes nothing.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import logging
import sys
import types
from pathlib import Path

_log = logging.getLogger("meterd.cosem.gurux_lazy")

ROOT_PACKAGE = "gurux_dlms"


class LazyPackage(types.ModuleType):
    """A package whose re-exported names are imported from their modules on first access."""

    _lazy_names: dict[str, tuple[str, str]]

    def __getattr__(self, name: str) -> object:
        target = self.__dict__["_lazy_names"].get(name)
        if target is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module_name, attribute = target
        value = getattr(importlib.import_module(f"{self.__name__}.{module_name}"), attribute)
        types.ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: object) -> None:
        # The import system binds a loaded submodule on its package; where __init__ would have
        # re-bound that name to the class the submodule defines, bind the class.
        target = self.__dict__.get("_lazy_names", {}).get(name)
        if target is not None and isinstance(value, types.ModuleType):
            module_name, attribute = target
            if value.__name__ == f"{self.__name__}.{module_name}" and hasattr(value, attribute):
                value = getattr(value, attribute)
        types.ModuleType.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self.__dict__["_lazy_names"]))


def reexports(init_source: str) -> tuple[dict[str, tuple[str, str]], dict[str, object]] | None:
    """The names a package ``__init__`` re-exports, or None when it does more than re-export.

    Returns ``({name: (module, attribute)}, {constant name: value})``.
    """
    names: dict[str, tuple[str, str]] = {}
    constants: dict[str, object] = {}
    for node in ast.parse(init_source).body:
        if (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
                and all(alias.name != "*" for alias in node.names)):
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            targets = [target.id for target in node.targets if isinstance(target, ast.Name)]
            if len(targets) != len(node.targets):
                return None
            constants.update(dict.fromkeys(targets, node.value.value))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        else:
            return None
    return names, constants


def _install_package(name: str, search_path: list[str] | None) -> LazyPackage | None:
    spec = importlib.machinery.PathFinder.find_spec(name, search_path)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return None
    plan = reexports(Path(spec.origin).read_text(encoding="utf-8"))
    if plan is None:
        return None
    names, constants = plan
    package = LazyPackage(name)
    package.__dict__.update(constants)
    search_locations = list(spec.submodule_search_locations)
    package.__dict__.update(__file__=spec.origin, __path__=search_locations,
                            __spec__=spec, __package__=name, __loader__=spec.loader, _lazy_names=names)
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        types.ModuleType.__setattr__(sys.modules[parent], child, package)
    for entry in sorted(Path(spec.origin).parent.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").is_file():
            _install_package(f"{name}.{entry.name}", search_locations)
    return package


def install() -> bool:
    """Make gurux_dlms's re-exporting packages lazy; False when gurux_dlms was already imported."""
    if ROOT_PACKAGE in sys.modules:
        return isinstance(sys.modules[ROOT_PACKAGE], LazyPackage)
    installed = _install_package(ROOT_PACKAGE, None) is not None
    if not installed:
        _log.info("gurux_dlms's package layout is not plain re-exports: it is imported whole")
    return installed
