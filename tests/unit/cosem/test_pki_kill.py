"""The PKI store killed with SIGKILL while it writes (a real process, no simulated crash): whatever
write the kill interrupts, the next start finds one usable key pair, one certificate per client and
use, no file refused and no temporary file left."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from meterd.cosem.pki import CertificateEntity, KeyUse
from meterd.cosem.pki_store import PkiStore
from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE
from tests.pki_ca import NOW, TestCa, client_key, der

REPO = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from meterd.cosem.pki import KeyUse
    from meterd.cosem.pki_store import PkiStore
    from tests.pki_ca import NOW

    store = PkiStore(Path(sys.argv[1]), bytes.fromhex(sys.argv[2]))
    certs = [bytes.fromhex(line) for line in Path(sys.argv[3]).read_text().split()]
    n = 0
    while True:
        store.generate_key_pair(KeyUse.DIGITAL_SIGNATURE, 1)
        store.import_certificate(certs[n % len(certs)], NOW)
        n += 1
        if n == 3:
            print("writing", flush=True)
""")


def _wait_line(proc: subprocess.Popen[str], limit_s: float = 60.0) -> str:
    """The child's first line, waiting at most ``limit_s`` (s) for it."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], limit_s)
    assert ready, "the writer never started writing"
    return proc.stdout.readline().strip()


def test_a_kill_mid_write_leaves_a_usable_store(tmp_path):
    directory = tmp_path / "pki"
    ca = TestCa()
    store = PkiStore(directory, SERVER_TITLE)
    store.import_certificate(ca.der, NOW)
    certs = [der(ca.issue(client_key().public_key(), CLIENT_TITLE, serial=s)) for s in (101, 102, 103)]
    (tmp_path / "certs.txt").write_text("\n".join(c.hex() for c in certs))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for round_ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), SERVER_TITLE.hex(),
                                 str(tmp_path / "certs.txt")], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        try:
            assert _wait_line(proc) == "writing"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        again = PkiStore(directory, SERVER_TITLE)
        assert again.problems == [], round_
        assert again.own_key(KeyUse.DIGITAL_SIGNATURE, 1) is not None
        entities = [c.entity for c in again.certificates()]
        assert entities == [CertificateEntity.CERTIFICATION_AUTHORITY, CertificateEntity.CLIENT], round_
        assert again.peer_public_key(CLIENT_TITLE, KeyUse.DIGITAL_SIGNATURE, 1, NOW) is not None
        leftovers = [p for p in directory.rglob("*") if p.is_file() and p.suffix not in (".p8", ".der")]
        assert leftovers == []
        assert len(list((directory / "certificates").iterdir())) == 2  # the loser of a torn replacement is gone
