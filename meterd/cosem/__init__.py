"""DLMS/COSEM server of the meter (IEC 62056-5-3 LN referencing), the only importer of gurux_dlms.

Entry point for the composition root: :func:`meterd.cosem.server.build_session_factory`.
"""

from meterd.cosem import gurux_lazy

gurux_lazy.install()  # before any module of this package imports gurux_dlms
