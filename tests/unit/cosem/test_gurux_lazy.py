"""gurux_dlms loaded on demand (meterd.cosem.gurux_lazy): same names, same objects, fewer modules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from meterd.cosem.gurux_lazy import reexports

# Prints {package: {name: what it is}} for every name an eager gurux_dlms package holds.
_WALK = """
import importlib, json, sys, types
from pathlib import Path
LAZY = {lazy}
if LAZY:
    from meterd.cosem import gurux_lazy
    assert isinstance(sys.modules["gurux_dlms"], gurux_lazy.LazyPackage)
import gurux_dlms
root = Path(gurux_dlms.__file__).parent
packages = sorted("gurux_dlms" + ".".join([""] + list(p.parent.relative_to(root).parts))
                  for p in root.rglob("__init__.py") if "__pycache__" not in p.parts)
def describe(value):
    if isinstance(value, types.ModuleType):
        return "module " + value.__name__
    if isinstance(value, (type, types.FunctionType)):
        return value.__module__ + "." + value.__qualname__
    return type(value).__name__ + " " + repr(value)
names = json.loads(sys.stdin.read()) if LAZY else None
out = {{}}
for name in packages:
    package = importlib.import_module(name)
    wanted = names[name] if LAZY else [n for n in dir(package) if not n.startswith("__")]
    out[name] = {{n: describe(getattr(package, n)) for n in wanted
                 if LAZY or not isinstance(getattr(package, n), types.ModuleType)}}
print(json.dumps(out))
"""


def _run(code: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], input=stdin, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_name_is_the_object_an_eager_import_gives() -> None:
    eager = json.loads(_run(_WALK.format(lazy=False)))
    wanted = json.dumps({package: sorted(names) for package, names in eager.items()})
    lazy = json.loads(_run(_WALK.format(lazy=True), stdin=wanted))
    assert sum(len(names) for names in eager.values()) > 400  # the walk saw the packages' names
    assert lazy == eager


def test_the_server_modules_leave_the_client_and_translator_out() -> None:
    loaded = json.loads(_run("""
        import importlib, json, pkgutil, sys
        import meterd.cosem
        for info in pkgutil.iter_modules(meterd.cosem.__path__):
            importlib.import_module("meterd.cosem." + info.name)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("gurux_dlms"))))
    """))
    assert "gurux_dlms.GXDLMSServer" in loaded or "gurux_dlms.GXDLMSLNCommandHandler" in loaded
    for module in ("gurux_dlms.GXDLMSClient", "gurux_dlms.GXDLMSTranslator", "gurux_dlms.GXDLMSXmlClient"):
        assert module not in loaded
    assert len(loaded) < 330  # 398 when the packages import everything


def test_install_after_an_eager_import_changes_nothing() -> None:
    out = _run("""
        import gurux_dlms, types
        from meterd.cosem import gurux_lazy
        print(gurux_lazy.install(), type(gurux_dlms) is types.ModuleType, "GXDLMSClient" in vars(gurux_dlms))
    """)
    assert out.split() == ["False", "True", "True"]


def test_reexports_reads_plain_reexports_and_refuses_anything_else() -> None:
    assert reexports('"""doc"""\nfrom .A import A\nfrom .B import (B,\n  C as D)\nname = "x"\n') == (
        {"A": ("A", "A"), "B": ("B", "B"), "D": ("B", "C")}, {"name": "x"})
    assert reexports("from .A import *\n") is None
    assert reexports("from . import A\n") is None
    assert reexports("import os\n") is None
    assert reexports("from .A import A\nA.patch()\n") is None


def test_the_lazy_package_reads_its_data_files() -> None:
    out = _run("""
        import sys
        import meterd.cosem
        from gurux_dlms import GXDLMSConverter
        from gurux_dlms.enums import Standard
        assert type(sys.modules["gurux_dlms"]).__name__ == "LazyPackage"
        print(GXDLMSConverter(Standard.DLMS).getDescription("1.0.1.8.0.255")[0])
    """)
    assert "Active power+" in out
