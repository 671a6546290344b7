"""Lifting users' keypoint files: windows, outputs, renders.

Tracks come from `formats.keypoint_formats`; `windows` runs a fixed-T model
over any length, `lift` restores a model and writes each track's 3D, and
`render` draws the animations. `python -m opformer_jax.infer` is the entry
point (`__main__`).
"""
