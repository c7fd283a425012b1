"""Displayed maths in the documents' notation: the notation (``notation.py``), named intermediates
(``names.py``), displayed forms (``forms.py``), the LaTeX expression printer (``latex.py``) and line
breaking (``layout.py``).  Nothing below this layer imports it.

``from derive.display import DISPLAY_WIDTH, intermediate_symbols`` is what the notebooks use.
"""

from .forms import DISPLAY_WIDTH, compact_readable, equation_latex, intermediate_symbols, readable

__all__ = ["DISPLAY_WIDTH", "compact_readable", "equation_latex", "intermediate_symbols", "readable"]
