r"""Speed of video input: decoding, BlazePose detection, lifting, end to end.

  python tools/benchmark_video.py [--frames=300] [--size=1280,720] \
      [--render=mp4]        # needs pip install -e ".[video]" (docs/video.md)

Writes a --size clip of --frames frames at 30 fps (the public-domain Grace
Hopper portrait of matplotlib's wheel moving across a grey frame,
tests/fixtures/README.md) to a temporary folder and times, on the default
JAX device:

* decode: PyAV decoding to upright RGB alone (`infer.video.frames`);
* detect: BlazePose over the clip (`infer.detect.detect_video`, decoding on
  a thread beside it), what `--input=clip.mp4` runs first;
* lift: the bundled model on the detected 2D (`infer.lift.lift_track`, flip
  test-time augmentation on as in `infer`), compiled beforehand, and the
  compilation time separately;
* end to end: detection + lifting (+ compilation: what a first run costs),
  without the render; the render's frames/s is printed on its own.

Prints the CPU model, since the figures depend on it.
"""

import os
import sys
import tempfile
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

_FRAMES = flags.DEFINE_integer("frames", 300, "Frames in the clip.")
_SIZE = flags.DEFINE_list("size", ["1280", "720"], "W,H of the clip.")
_RENDER = flags.DEFINE_enum("render", "none", ["none", "gif", "mp4"],
                            "Also time the render of the result.")


def _write_clip(path, num_frames, size):
  """The benchmark clip (H.264, 30 fps)."""
  import av  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
    person = np.asarray(img.convert("RGB"))
  w, h = size
  ph, pw = min(person.shape[0], h), min(person.shape[1], w)
  person = person[:ph, :pw]
  with av.open(path, "w") as c:
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    for i in range(num_frames):
      frame = np.full((h, w, 3), 90, np.uint8)
      x = int((w - pw) * (0.5 + 0.4 * np.sin(i / 40)))
      y = int((h - ph) * 0.5)
      frame[y:y + ph, x:x + pw] = person
      for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def _lift(path_2d, out_dir):
  """(lift seconds, compile seconds, frames, track, result, model, config)."""
  from opformer_jax.formats import keypoint_formats  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import lift  # pylint: disable=g-import-not-at-top
  model, config, _ = lift.load_model()
  apply_fn = lift.make_apply_fn(model)
  (track,) = keypoint_formats.load_h36m(path_2d, "array")
  opts = lift.Options(render="none")
  _, first = _timed(lambda: lift.lift_track(apply_fn, track, config, opts))
  (result, _), lift_s = _timed(
      lambda: lift.lift_track(apply_fn, track, config, opts))
  del out_dir
  return lift_s, max(0.0, first - lift_s), track, result, config


def _check_flags() -> tuple[int, int]:
  """--frames and --size, refused in one line before anything is written."""
  from opformer_jax import errors  # pylint: disable=g-import-not-at-top
  errors.check_number("--frames", _FRAMES.value, minimum=1)
  try:
    size = tuple(int(v) for v in _SIZE.value)
  except ValueError:
    size = ()
  if len(size) != 2 or min(size) <= 0 or size[0] % 2 or size[1] % 2:
    raise errors.UserError(f"--size={','.join(_SIZE.value)}; expected W,H in "
                           "px, two even integers > 0 (H.264), e.g. 1280,720")
  return size


def main(argv):
  del argv
  from opformer_jax import cli  # pylint: disable=g-import-not-at-top
  size = _check_flags()
  cli.start_jax()
  import jax  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import detect  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import from_video  # pylint: disable=g-import-not-at-top
  from opformer_jax.infer import video  # pylint: disable=g-import-not-at-top
  n = _FRAMES.value
  with tempfile.TemporaryDirectory() as tmp:
    clip = os.path.join(tmp, "clip.mp4")
    _write_clip(clip, n, size)
    _, decode_s = _timed(lambda: sum(1 for _ in video.frames(clip)))
    dets, detect_s = _timed(lambda: detect.detect_video(clip,
                                                        progress=False))
    path_2d = os.path.join(tmp, "clip_2d.npz")
    from_video.write_2d(path_2d, "clip", dets,
                        video.frame_rate(dets.times_s))
    lift_s, compile_s, track, result, config = _lift(path_2d, tmp)
    lines = [
        f"video benchmark: {n} frames of {size[0]}x{size[1]} H.264, "
        f"{cli.cpu_name()} ({os.cpu_count()} cores), JAX on "
        f"{jax.devices()[0].platform}",
        f"  decode (PyAV, RGB)    {n / decode_s:7.1f} frames/s",
        f"  detect (BlazePose)    {n / detect_s:7.1f} frames/s  (person in "
        f"{int(dets.found.sum())}/{n} frames)",
        f"  lift (bundled model)  {n / lift_s:7.1f} frames/s  (+ "
        f"{compile_s:.1f} s compilation, once per run)",
        f"  end to end            {n / (detect_s + lift_s):7.1f} frames/s  "
        f"({n / (detect_s + lift_s + compile_s):.1f} with compilation; "
        f"detection takes {detect_s / (detect_s + lift_s):.0%} of the time)",
    ]
    if _RENDER.value != "none":
      from opformer_jax.infer import render  # pylint: disable=g-import-not-at-top
      out = os.path.join(tmp, f"clip.{_RENDER.value}")
      drawn, render_s = _timed(lambda: render.render_animation(
          result["kp2d"], result["pose3d_mm"], config.model.layout, out,
          fps=30, image_size=track.image_size,
          trajectory=result["root_cam_mm"], max_frames=None,
          background=from_video.background(
              clip, rate=video.frame_rate(dets.times_s))))
      lines.append(f"  render ({_RENDER.value}, video + 3D) "
                   f"{drawn / render_s:5.1f} frames/s drawn")
  print("\n".join(lines))


if __name__ == "__main__":
  from opformer_jax import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
