"""The revenue service's set-up from configuration data: the built-in calendar, a calendar
table, load-profile capture objects by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meterd.core.calendar import (
    ActivityCalendar,
    CalendarError,
    CalendarSet,
    SpecialDaysTable,
)
from meterd.core.energy import Quantity
from meterd.core.profile import (
    ColumnKind,
    ProfileChannel,
    default_load_profile_channels,
)
from meterd.core.reading import PHASES


def default_calendar() -> dict[str, Any]:
    """Three rates: 1 off-peak, 2 shoulder, 3 peak on weekdays (17:00–20:00 in winter,
    11:00–15:00 in summer); weekends and public holidays off-peak except a daytime shoulder."""
    def day(day_id: int, *switches: tuple[str, int]) -> dict[str, Any]:
        return {"day_id": day_id, "switches": [{"start": t, "rate": r} for t, r in switches]}

    return {
        "name": "PMM3R",
        "seasons": [{"name": "winter", "start": {"month": 10, "day": 1}, "week_name": "winter"},
                    {"name": "summer", "start": {"month": 4, "day": 1}, "week_name": "summer"}],
        "week_profiles": [{"name": "winter", "day_ids": [1, 1, 1, 1, 1, 3, 3]},
                          {"name": "summer", "day_ids": [2, 2, 2, 2, 2, 3, 3]}],
        "day_profiles": [
            day(1, ("00:00", 1), ("07:00", 2), ("17:00", 3), ("20:00", 2), ("22:00", 1)),
            day(2, ("00:00", 1), ("07:00", 2), ("11:00", 3), ("15:00", 2), ("22:00", 1)),
            day(3, ("00:00", 1), ("08:00", 2), ("20:00", 1)),
        ],
        "special_days": [{"index": i, "date": {"month": m, "day": d}, "day_id": 3}
                         for i, (m, d) in enumerate(((1, 1), (5, 1), (12, 25), (12, 26)), start=1)],
    }


def build_calendar(data: Mapping[str, Any], rates: int) -> ActivityCalendar:
    """The activity calendar of a ``[revenue.calendar]`` table; rates must be 1..``rates``."""
    try:
        active = CalendarSet.from_dict(dict(data))
        special = SpecialDaysTable.from_dict({"entries": list(data.get("special_days", []))})
        calendar = ActivityCalendar(active, special)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"calendar: missing or malformed {exc}") from None
    except CalendarError as exc:
        raise ValueError(f"calendar: {exc}") from None
    used = {s.rate for d in active.day_profiles for s in d.switches}
    if max(used) > rates:
        raise ValueError(f"calendar uses rate {max(used)} but rates = {rates}")
    return calendar


_CHANNEL_NAMES: dict[str, ProfileChannel] = {
    **{f"{q.name.lower()}_interval": ProfileChannel(ColumnKind.INTERVAL_ENERGY, q) for q in Quantity},
    **{f"{q.name.lower()}_register": ProfileChannel(ColumnKind.CUMULATIVE_ENERGY, q) for q in Quantity},
    **{f"voltage_{ph.value.lower()}": ProfileChannel(ColumnKind.AVERAGE_VOLTAGE, None, ph) for ph in PHASES},
    "status": ProfileChannel(ColumnKind.STATUS),
}


def profile_channels(names: tuple[str, ...]) -> tuple[ProfileChannel, ...]:
    """Load-profile capture objects from names (the clock always comes first); () = default."""
    if not names:
        return default_load_profile_channels()
    unknown = [n for n in names if n not in _CHANNEL_NAMES]
    if unknown:
        raise ValueError(f"unknown profile channels {unknown} (known: {', '.join(sorted(_CHANNEL_NAMES))})")
    return (ProfileChannel(ColumnKind.CLOCK), *(_CHANNEL_NAMES[n] for n in names))
