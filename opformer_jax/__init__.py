"""OPFormer: origin-centric, part-based 2D-to-3D human pose lifting in JAX."""

__version__ = "0.1.0"
