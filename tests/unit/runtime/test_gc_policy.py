"""After the start-up, the collector's full collections leave the start-up's objects alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_settle_collects_once_and_freezes_the_survivors() -> None:
    # in a fresh interpreter: a freeze is for the life of the process
    code = textwrap.dedent("""
        import gc
        from meterd.runtime import gc_policy
        assert gc_policy.frozen_objects() == 0
        kept = [[i] for i in range(20000)]  # lists: always tracked by the collector
        for _ in range(50):  # garbage only the cyclic collector frees
            loop = []
            loop.append(loop)
        del loop
        settled = gc_policy.settle()
        assert settled.collected >= 50, settled
        assert settled.frozen == gc_policy.frozen_objects() >= 20000, settled
        tracked = {id(o) for o in gc.get_objects()}
        assert id(kept[0]) not in tracked  # frozen: out of every later collection
        later = [[i] for i in range(10)]
        assert id(later[0]) in {id(o) for o in gc.get_objects()}
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
