"""The suite's own rule: a missing optional dependency skips a test, and fails it under CI=true."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require_module


def test_a_present_module_is_imported() -> None:
    assert require_module("json", "the standard library") is json


def test_a_missing_module_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no_such_module_for_this_test.*the reason"):
        require_module("no_such_module_for_this_test", "the reason")


def test_a_missing_module_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no_such_module_for_this_test.*CI=true"):
        require_module("no_such_module_for_this_test", "the reason")
