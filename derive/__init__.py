"""derive: gradient formulas of neural-network operators, derived symbolically, shipped as code and maths."""

__version__ = "0.1.0"
