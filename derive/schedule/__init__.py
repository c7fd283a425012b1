"""What every target reads: the decisions about how a derivation is computed, made once.

``cse.py`` shares common subexpressions as named temporaries and decides where each is computed
(reductions hidden behind ``Reduce`` and restored); ``stable.py`` rewrites exponentials into their
checked, max-shifted stable forms; ``inplace.py`` lowers a scheduled kernel into steps that update
the arrays it owns in place, after ``factoring.py`` groups the full-size factors terms share;
``residuals.py`` chooses what a forward saves for the backward.  Targets print these decisions; none
repeats them.
"""
