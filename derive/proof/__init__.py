"""Judging rendered files against an independent oracle: the oracle, the kernel proof and its
layout cases, the twin's proof, claims and the formulas they are written in.  It names no target.
"""
