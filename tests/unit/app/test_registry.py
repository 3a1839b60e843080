"""meterd.app.registry: what features offer each other, by type, resolved at attach time."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterd.app.registry import KNOWN, Registry
from meterd.core.errors import ConfigError
from meterd.core.events import EventRecorder
from meterd.services.firmware_port import FirmwareInstaller
from meterd.services.revenue import RevenueService
from meterd.services.uplink import Uplink
from tests.simmeter import SimMeter


class Widget:
    pass


def test_need_and_find_return_what_was_provided() -> None:
    registry = Registry("meter.toml")
    recorder = EventRecorder()
    registry.provide(EventRecorder, recorder, by="supervision")
    assert registry.need(EventRecorder, by="revenue") is recorder
    assert registry.find(EventRecorder) is recorder
    assert registry.provider(EventRecorder) == "supervision"
    assert EventRecorder in registry and list(registry) == [EventRecorder]


def test_a_missing_dependency_names_the_feature_that_provides_it() -> None:
    registry = Registry("meter.toml")
    with pytest.raises(ConfigError) as caught:
        registry.need(EventRecorder, by="payment")
    assert str(caught.value) == ("meter.toml: payment: feature 'payment' needs the event recorder,"
                                 " which the 'supervision' feature provides: enable it")
    with pytest.raises(ConfigError, match="needs Widget$"):
        registry.need(Widget, by="display")


def test_an_optional_dependency_is_none_when_absent() -> None:
    registry = Registry()
    assert registry.find(RevenueService) is None
    assert registry.provider(RevenueService) is None


def test_a_kind_has_one_provider() -> None:
    registry = Registry()
    registry.provide(Widget, Widget(), by="a")
    with pytest.raises(ValueError, match="provided by 'a' already"):
        registry.provide(Widget, Widget(), by="b")


def test_the_known_providers_are_the_features_that_provide_them(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path)
    try:
        registry = meter.daemon.registry
        provided = {kind: registry.provider(kind) for kind in KNOWN if kind in registry}
        assert len(provided) >= 6
        assert provided == {kind: KNOWN[kind][1] for kind in provided}
    finally:
        meter.close()


@pytest.mark.parametrize(("kind", "what", "feature"), [
    (FirmwareInstaller, "the firmware installer", "firmware"),
    (Uplink, "the uplink to the head end", "comms"),
])
def test_the_firmware_installer_and_the_uplink_name_their_feature(kind: type, what: str, feature: str) -> None:
    with pytest.raises(ConfigError, match=f"needs {what} .*which the '{feature}' feature provides"):
        Registry().need(kind, by="push")
