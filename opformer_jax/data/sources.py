"""Where a config's splits are: one resolution for every entry point.

Training, evaluation, the benchmark and the tools all call `resolve(config)`
before they read `config.data.train_path` / `test_path`, so a config that
trains also evaluates. The built-in synthetic dataset (`data.name =
'synthetic'` without paths) is generated once into the user cache and reused;
any other dataset must name its files.
"""

import os

import ml_collections

from opformer_jax import errors

SPLITS = ("train", "test")
CACHE_DIR = "~/.cache/opformer_jax/synthetic"


def resolve(config: ml_collections.ConfigDict,
            splits=SPLITS) -> ml_collections.ConfigDict:
  """`config` with the paths of `splits` filled in and checked to be set.

  Args:
    config: the experiment config.
    splits: the splits the caller reads ('train', 'test').

  Returns:
    `config` itself when nothing was missing, else a locked copy with the
    built-in synthetic dataset's paths filled in (generated into
    `~/.cache/opformer_jax/synthetic` on first use, a few seconds).

  Raises:
    errors.ConfigError: a needed path is not set and `data.name` is not
      'synthetic'.
  """
  d = config.data
  missing = [s for s in splits if not d[f"{s}_path"]]
  if not missing:
    return config
  if d.name != "synthetic":
    raise errors.ConfigError(
        f"config.data.{missing[0]}_path is not set; expected the "
        f"{missing[0]} split of a prepared dataset (e.g. "
        "configs/h36m.py:data_dir=DIR, or "
        f"--config.data.{missing[0]}_path=DIR/{missing[0]}.npz)")
  from opformer_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  default = dict(zip(SPLITS, synthetic.ensure_default(
      os.path.expanduser(CACHE_DIR))))
  config = ml_collections.ConfigDict(config.to_dict())
  for split in missing:
    config.data[f"{split}_path"] = default[split]
  config.lock()
  return config
