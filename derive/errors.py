"""The errors a user of derive can see, in one small module that imports nothing of derive.

Each layer raises its own class from here (the model checks raise ``ModelError``, the
differentiator ``DerivationError``, the NumPy printer ``LoweringError`` ...), and the command line
catches them all from here.  Each message names the problem in one line.
"""

from __future__ import annotations


class ModelError(ValueError):
    """A model (or formula) that is not well formed; the message names the part and where it is."""


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and, when known, the line."""


class UnknownOperatorError(KeyError):
    """An operator name that no model registers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(RuntimeError):
    """An installed package's operator that cannot be loaded or built."""


class ReadError(ValueError):
    """Text that is not in the grammar; the message names the offending piece."""


class FormulaError(ReadError):
    """A formula that cannot be read in the operator's names; the message says what and where."""


class DerivationError(ValueError):
    """The model cannot be differentiated as written; the message names the part."""


class ProofError(DerivationError):
    """A rendered file does not compute what its model says; the message names where."""


class UndefinedError(DerivationError):
    """The model is not a finite real number (NaN, inf, complex) at a point its inputs' and
    parameters' domains allow; the message names the part, what it depends on and the declaration."""


class LoweringError(ValueError):
    """An expression that has no O(input) array form."""


class RenderError(RuntimeError):
    """A template failed to render; the message names the template and the operator."""


class ClaimError(ValueError):
    """A claim that cannot be checked as stated (the formula or an option); the message says why."""


class OutputError(ValueError):
    """A path derive cannot or must not write (the message is one line naming it)."""


class NotGeneratedError(RuntimeError):
    """Generated files a command reads (``derive bench``'s kernels) are not where it looks; the
    message names the folder."""


class TexMissingError(RuntimeError):
    """Neither latexmk nor pdflatex is on PATH."""


class CompileError(RuntimeError):
    """A document failed to compile; the message quotes LaTeX's error."""


class UntrustedCacheWarning(UserWarning):
    """A cache folder or entry that another user could have written: it is not used (the message
    names it and says how to fix it)."""
