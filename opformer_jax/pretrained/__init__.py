"""Trained models as plain files: the bundled default model and `save`/`load`.

A saved model is a folder of

  config.json    the full ml_collections config (`config.to_json()`), so the
                 model is rebuilt exactly and `data.num_frames` / the label
                 space travel with the weights;
  weights.npz    one array per NNX parameter, keyed by its path in the module
                 tree joined with '/' (`loops/temporal/attn/qkv/kernel`),
                 stored as float32 or float16;
  MODEL_CARD.md  optional: what it was trained on, how, and how well it does.

`load()` without a path returns the model shipped inside the package
(`opformer_jax/pretrained/default/`), which `python -m opformer_jax.infer`
uses when no --workdir is given. Unlike an Orbax checkpoint the folder needs
no optimizer state and is a few MB.
"""

import json
import os
import zipfile

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from opformer_jax import config_lib
from opformer_jax import errors
from opformer_jax import fileio
from opformer_jax import model as model_lib

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "default")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"
CARD_FILE = "MODEL_CARD.md"
_STORE_DTYPES = ("float32", "float16")


def _key(path) -> str:
  return "/".join(str(p) for p in path)


def flat_params(model: nnx.Module) -> dict[str, np.ndarray]:
  """{'a/b/kernel': array} of every parameter of `model`."""
  state = nnx.state(model, nnx.Param)
  return {_key(path): np.asarray(var.get_value())
          for path, var in nnx.to_flat_state(state)}


def save(model: nnx.Module, config: ml_collections.ConfigDict, out_dir: str,
         card: str | None = None, dtype: str = "float32") -> list[str]:
  """Writes `model` and `config` into `out_dir` (each file atomically).

  Args:
    model: a trained OPFormer.
    config: the full config it was trained with (`model`, `data`, ...).
    out_dir: created if needed; existing files of the same names are
      replaced only once the new ones are complete.
    card: Markdown text for MODEL_CARD.md (not written when None).
    dtype: storage dtype of the weights, 'float32' or 'float16' (half the
      size; loaded back as the model's float32).

  Returns:
    the written paths.
  """
  if dtype not in _STORE_DTYPES:
    raise ValueError(f"dtype={dtype!r}; expected one of {_STORE_DTYPES}")
  params = {k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v
            for k, v in flat_params(model).items()}
  os.makedirs(out_dir, exist_ok=True)
  weights = os.path.join(out_dir, WEIGHTS_FILE)
  with fileio.atomic_path(weights) as tmp, open(tmp, "wb") as f:
    np.savez_compressed(f, **params)
  cfg_path = os.path.join(out_dir, CONFIG_FILE)
  fileio.write_text(cfg_path, config.to_json(indent=1, sort_keys=True) + "\n")
  paths = [cfg_path, weights]
  if card is not None:
    paths.append(os.path.join(out_dir, CARD_FILE))
    fileio.write_text(paths[-1], card)
  return paths


def _read_config(path: str) -> ml_collections.ConfigDict:
  """config.json -> the base config with the saved values on top."""
  cfg_path = os.path.join(path, CONFIG_FILE)
  try:
    with open(cfg_path) as f:
      saved = json.load(f)
  except json.JSONDecodeError as e:
    raise errors.UserError(errors.bad_input(
        cfg_path, f"not valid JSON ({e.msg}, line {e.lineno})",
        "the config.json written by opformer_jax.pretrained.save")) from e
  if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
    raise errors.UserError(errors.bad_input(
        cfg_path, "has no 'model' section",
        "the config.json written by opformer_jax.pretrained.save"))
  config = config_lib.base_config()
  try:
    config.update(saved)
  except (TypeError, ValueError, KeyError) as e:
    raise errors.UserError(errors.bad_input(
        cfg_path, f"a value does not fit the config ({e})",
        "the config.json written by opformer_jax.pretrained.save")) from e
  return config


def _read_weights(path: str) -> dict[str, np.ndarray]:
  weights = os.path.join(path, WEIGHTS_FILE)
  try:
    with np.load(weights, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise errors.UserError(errors.bad_input(
        weights, f"cannot be read ({type(e).__name__}: {e})",
        "the weights.npz written by opformer_jax.pretrained.save")) from e


def _fill(model_cfg, params: dict, weights: str) -> nnx.Module:
  """The abstract model of `model_cfg` with `params` as its values."""
  graphdef, state = nnx.split(model_lib.abstract_model(model_cfg))
  expected = "the parameters of the model in config.json"
  flat = []
  for path, var in nnx.to_flat_state(state):
    key, shape = _key(path), var.get_value().shape
    if key not in params:
      raise errors.UserError(errors.bad_input(
          weights, f"parameter {key!r} is missing", expected))
    value = params.pop(key)
    if value.shape != shape or not np.isfinite(value).all():
      raise errors.UserError(errors.bad_input(
          weights, f"parameter {key!r} has shape {value.shape}"
          f"{'' if np.isfinite(value).all() else ' and non-finite values'}",
          f"shape {shape}, finite"))
    flat.append((path, var.replace(jnp.asarray(value, var.get_value().dtype))))
  if params:
    raise errors.UserError(errors.bad_input(
        weights, f"unknown parameters {sorted(params)[:3]}", expected))
  return nnx.merge(graphdef, nnx.from_flat_state(flat))


def load(path: str | None = None):
  """Loads a model saved by `save`.

  Args:
    path: the folder; None = the default model bundled with the package.

  Returns:
    (model, config): the OPFormer with its weights (float32) and the full
    config it was trained with.

  Raises:
    errors.UserError: the folder or one of its files is missing or damaged
      (one line naming the file).
  """
  path = DEFAULT_DIR if path is None else path
  missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE)
             if not os.path.isfile(os.path.join(path, f))]
  if missing:
    what = ("the bundled default model is not installed" if path ==
            DEFAULT_DIR else "no saved model here")
    raise errors.UserError(errors.bad_input(
        path, f"{what} (missing {', '.join(missing)})",
        "a folder with config.json and weights.npz written by "
        "opformer_jax.pretrained.save, or --workdir of a trained run"))
  config = _read_config(path)
  params = _read_weights(path)
  try:
    model = _fill(config.model, params, os.path.join(path, WEIGHTS_FILE))
  except (ValueError, TypeError, KeyError) as e:
    if isinstance(e, errors.UserError):
      raise
    raise errors.UserError(errors.bad_input(
        os.path.join(path, CONFIG_FILE),
        f"the model config cannot be built ({e})",
        "a config.json written by opformer_jax.pretrained.save")) from e
  return model, config


def card(path: str | None = None) -> str | None:
  """The model card text of a saved model (None when it has none)."""
  card_path = os.path.join(DEFAULT_DIR if path is None else path, CARD_FILE)
  if not os.path.isfile(card_path):
    return None
  with open(card_path) as f:
    return f.read()
