"""meterd.app.registry: what features offer each other, by type, resolved at attach time."""

from __future__ import annotations

import pytest

from meterd.app.registry import Registry
from meterd.core.errors import ConfigError
from meterd.core.events import EventRecorder
from meterd.services.revenue import RevenueService


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
