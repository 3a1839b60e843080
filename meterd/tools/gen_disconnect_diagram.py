"""Generate the class 70 state diagram (Mermaid) and mode table from the transition table in code.

``python -m meterd.tools.gen_disconnect_diagram`` prints the Markdown block that
``docs/disconnect-control.md`` holds between the ``BEGIN GENERATED`` / ``END GENERATED`` markers;
``--write`` replaces that block in the document; ``--check`` exits 1 when the document is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meterd.core.disconnect import MODE_TRANSITIONS, TRANSITION_EVENT, TRANSITIONS, ControlState

BEGIN = "<!-- BEGIN GENERATED: python -m meterd.tools.gen_disconnect_diagram --write -->"
END = "<!-- END GENERATED -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "disconnect-control.md"


def _state_id(state: ControlState) -> str:
    return state.name.lower()


def mermaid() -> str:
    """The state diagram as Mermaid ``stateDiagram-v2`` text."""
    lines = ["stateDiagram-v2"]
    for state in ControlState:
        lines.append(f"    {_state_id(state)}: {state.name.lower()} ({int(state)})")
    lines.append(f"    [*] --> {_state_id(ControlState.CONNECTED)}")
    for name, t in TRANSITIONS.items():
        lines.append(f"    {_state_id(t.source)} --> {_state_id(t.target)}: {name} {t.trigger.value}")
    return "\n".join(lines)


def transition_table() -> str:
    """Markdown table: transition, trigger, from, to, logged event code."""
    rows = ["| transition | trigger | from | to | event code |", "|---|---|---|---|---|"]
    for name, t in TRANSITIONS.items():
        event = TRANSITION_EVENT[name]
        rows.append(f"| {name} | {t.trigger.value} | {t.source.name.lower()} | {t.target.name.lower()} "
                    f"| {int(event)} {event.name.lower()} |")
    return "\n".join(rows)


def mode_table() -> str:
    """Markdown table: which transitions each control_mode enables."""
    names = list(TRANSITIONS)
    rows = ["| control_mode | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for mode, enabled in MODE_TRANSITIONS.items():
        cells = ["x" if n in enabled else "-" for n in names]
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def generated_block() -> str:
    """Everything between (and including) the markers."""
    return "\n".join([BEGIN, "", "```mermaid", mermaid(), "```", "", transition_table(), "",
                      mode_table(), "", END])


def replace_block(text: str) -> str:
    """``text`` with its generated block replaced by the current one."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + generated_block() + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/disconnect-control.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(generated_block())
        return 0
    text = args.doc.read_text(encoding="utf-8")
    fresh = replace_block(text)
    if args.check:
        return 0 if fresh == text else 1
    args.doc.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
