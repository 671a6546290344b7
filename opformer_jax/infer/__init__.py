"""Lifting users' keypoint files: windows, outputs, renders.

Tracks come from `formats.keypoint_formats`; `windows` runs a fixed-T model
over any length, `lift` restores a model and writes each track's 3D, and
`render` draws the animations. Video input: `video` decodes, `detect` runs
BlazePose, `from_video` turns a video into a 2D keypoint file
(docs/video.md); `plausibility` scores lifted motion that has no 3D
truth. `python -m opformer_jax.infer` is the entry point (`__main__`).
"""
