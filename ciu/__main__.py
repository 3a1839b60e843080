"""``python -m ciu``: the CIU daemon (same arguments as ``ciu.app``; see its docstring)."""

from __future__ import annotations

import sys

from ciu.app import main

if __name__ == "__main__":
    sys.exit(main())
