"""The built-in operators' generated kernels and LaTeX documents, installed as ``derive.generated``.

``from derive.generated.numpy import rmsnorm`` (or ``.array_api``) works wherever derive is installed
(editable or not).  Everything below ``numpy/``, ``array_api/`` and ``latex/`` is written by
``derive generate``; this file is not.
"""
