"""The mutation check's own list (``tools/mutate.py``) kept applicable to the code as it is: each
mutation's text is in its file exactly once, and what must catch it exists.  Running the mutations
(minutes) is ``python tools/mutate.py``, by hand before a change to the engine lands."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from helpers import ROOT

from derive.model import registry


def _tool():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "tools" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


MUTATE = _tool()


def test_there_are_the_five_of_the_issue_and_ten_more():
    assert len(MUTATE.MUTATIONS) >= 15
    assert len({m.name for m in MUTATE.MUTATIONS}) == len(MUTATE.MUTATIONS)


@pytest.mark.parametrize("mutation", MUTATE.MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_applies_and_names_what_catches_it(mutation):
    assert MUTATE.applies(mutation) is None, MUTATE.applies(mutation)
    assert mutation.operators or mutation.tests
    assert set(mutation.operators) <= set(registry.names())
    for node in mutation.tests:
        path, _, function = node.partition("::")
        function = function.split("[")[0]  # a parametrised test's case: test_name[softmax]
        assert (ROOT / path).is_file(), node
        assert not function or f"def {function}(" in (ROOT / path).read_text(encoding="utf-8"), node
