"""The root of every exception raised by the hardware drivers and simulators in ``hw``.

Each driver keeps its own subtree (``SpiError``, ``Atm90e36Error``, ``SerialLinkError``, ...),
and some also derive from the built-in class their callers catch (``SpiError`` is an
``OSError``, ``GridError`` a ``ValueError``). ``except HwError`` catches any of them.
"""

from __future__ import annotations


class HwError(Exception):
    """Base of every error raised by a module of ``hw``."""
