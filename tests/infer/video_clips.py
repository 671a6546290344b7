"""Clips written frame by frame from arrays, for the video-input tests.

(Not a conftest.py: tests import the top-level tests/conftest.py by name.)
"""

import numpy as np
import pytest


def write_clip(path, images, fps=25, rotation=None, codec=None,
               times_s=None, options=None):
  """Writes (H, W, 3) uint8 `images` as a video with PyAV.

  codec None: lossless PNG frames in .mov/.mkv (any size, exact pixels),
  else e.g. 'libx264' (even sizes). times_s: per-frame presentation times
  (variable rate) instead of i / fps.
  """
  import av  # pylint: disable=g-import-not-at-top
  from fractions import Fraction  # pylint: disable=g-import-not-at-top
  images = list(images)
  codec = codec or "png"
  with av.open(str(path), "w", options=options or {}) as c:
    s = c.add_stream(codec, rate=fps)
    h, w = (images[0].shape[:2] if images else (48, 64))
    s.width, s.height = w, h
    s.pix_fmt = "rgb24" if codec == "png" else "yuv420p"
    if times_s is not None:
      s.codec_context.time_base = Fraction(1, 1000)
      s.time_base = Fraction(1, 1000)
    if rotation is not None:
      s.set_display_rotation(rotation)
    for i, img in enumerate(images):
      frame = av.VideoFrame.from_ndarray(img, format="rgb24")
      if times_s is not None:
        frame.pts = int(round(times_s[i] * 1000))
        frame.time_base = Fraction(1, 1000)
      for p in s.encode(frame):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  return path


def need_av():
  """Skips the test, with the reason, where PyAV is not installed."""
  pytest.importorskip("av", reason="video input needs PyAV: pip install -e "
                      "\".[video]\"")


def person_clip_frames(num_frames=30, size=(1280, 720)):
  """Frames of a real person: the public-domain Grace Hopper portrait
  shipped in matplotlib's wheel (tests/fixtures/README.md), moved by small
  affine shifts over a grey background."""
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
    person = np.asarray(img.convert("RGB"))
  w, h = size
  ph, pw = person.shape[:2]
  for i in range(num_frames):
    frame = np.full((h, w, 3), 90, np.uint8)
    x = 100 + 6 * i
    y = max(0, min(h - ph, 60 + int(20 * np.sin(i / 8))))
    frame[y:y + ph, x:x + pw] = person[:h - y, :w - x]
    yield frame
