"""The kernel text must not depend on Python's hash seed (sets of SymPy objects iterate in an
order that changes with it): ``derive check`` in CI would then fail at random."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import ROOT

GROUPING = """
import sympy as sp
from derive.schedule.factoring import group_shared_factors
k = sp.Idx("k", sp.Symbol("n", integer=True, positive=True))
a, b, c, d, e = (sp.IndexedBase(name)[k] for name in "abcde")
p, q, r = sp.symbols("p q r")
print(group_shared_factors(a * b * p + a * b * q + c * r + d * e))
"""


def test_shared_factor_grouping_is_the_same_under_every_hash_seed():
    """a and b are shared by the same terms (a tie): the choice may not follow a set's order."""
    printed = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", GROUPING], env=env, capture_output=True, text=True, check=True)
        printed.add(done.stdout)
    assert len(printed) == 1, printed
