"""The class 70 diagram in docs/disconnect-control.md is the generator's output for the code table."""

from __future__ import annotations

from pathlib import Path

from meterd.core.disconnect import TRANSITIONS
from meterd.tools import gen_disconnect_diagram as gen


def test_docs_hold_the_generated_block() -> None:
    text = gen.DOC.read_text(encoding="utf-8")
    assert gen.generated_block() in text
    assert gen.main(["--check"]) == 0


def test_diagram_has_every_transition() -> None:
    diagram = gen.mermaid()
    for name, t in TRANSITIONS.items():
        assert f": {name} {t.trigger.value}" in diagram


def test_check_detects_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "doc.md"
    stale.write_text(f"intro\n{gen.BEGIN}\nold diagram\n{gen.END}\nend\n", encoding="utf-8")
    assert gen.main(["--check", "--doc", str(stale)]) == 1
    assert gen.main(["--write", "--doc", str(stale)]) == 0
    assert gen.main(["--check", "--doc", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8").endswith("end\n")
