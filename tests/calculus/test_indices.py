"""Index substitution (``derive.calculus.indices``): a definition written in at a use site keeps its
meaning, whatever the names at that site (no capture by its sums, a swap stays a swap)."""

from __future__ import annotations

import sympy as sp

from derive.calculus.indices import free_indices, substitute_indices


def test_a_definition_written_in_where_its_sum_variable_is_a_free_index_is_not_captured():
    """r_i = sum_l a_{il} at the site r_l (inside another sum over l): sum_{l'} a_{l l'}, not sum_l a_{ll}."""
    i, l = sp.Idx("i", 3), sp.Idx("l", 3)
    a = sp.IndexedBase("a")
    written = substitute_indices(sp.Sum(a[i, l], (l, 0, 2)), (i,), (l,))
    assert free_indices(written) == {l}
    assert written.xreplace({l: 2}).doit() == a[2, 0] + a[2, 1] + a[2, 2]


def test_indices_swapped_at_once():
    i, j = sp.Idx("i", 3), sp.Idx("j", 3)
    a = sp.IndexedBase("a")
    assert substitute_indices(a[i, j], (i, j), (j, i)) == a[j, i]
