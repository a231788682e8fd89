"""The suite's own schedule (``tests/conftest.py``): slow modules longest first, each module's tests together and in
order, and a ``slow`` marker that does not state its measured seconds refused."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.conftest import _module_seconds, pytest_collection_modifyitems


@dataclass
class _Item:
    nodeid: str
    marks: dict = field(default_factory=dict)

    def get_closest_marker(self, name: str):
        return pytest.mark.slow(**self.marks[name]).mark if name in self.marks else None


def test_slow_modules_run_longest_first_with_their_tests_kept_together_and_in_order():
    slow = {"slow": {"seconds": 100}}
    items = [
        _Item("suite/a.py::test_1"), _Item("suite/b.py::test_1", slow), _Item("suite/b.py::test_2", slow),
        _Item("suite/c.py::test_1", {"slow": {"seconds": 400}}), _Item("suite/a.py::test_2"),
        _Item("suite/d.py::test_fast"), _Item("suite/d.py::test_slow", {"slow": {"seconds": 50}}),
    ]  # fmt: skip
    pytest_collection_modifyitems(None, items)
    assert [i.nodeid for i in items] == [
        "suite/c.py::test_1", "suite/b.py::test_1", "suite/b.py::test_2",
        "suite/d.py::test_fast", "suite/d.py::test_slow",  # a module is as long as its slowest test says
        "suite/a.py::test_1", "suite/a.py::test_2",
    ]  # fmt: skip


def test_a_slow_marker_without_its_measured_seconds_is_refused():
    with pytest.raises(pytest.UsageError, match=r"suite/e.py: a slow test states its measured seconds"):
        _module_seconds([_Item("suite/e.py::test_1", {"slow": {}})])
