"""Data parallelism: device mesh, shardings, host batches -> global arrays.

Parameters are replicated and batches split along a single 'data' axis over
every device of every process. The mesh uses Auto axis types: the model
reshapes (B, T, P, L, C) -> (B*T*P, L, C) freely, which Explicit mode (the
`jax.make_mesh` default) rejects.
"""

from absl import logging
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def initialize_distributed() -> None:
  """Joins a multi-host job when the environment describes one.

  `jax.distributed.initialize()` reads the cluster from the environment
  (SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
  JAX_PROCESS_ID); on a single machine it raises ValueError and we run as
  one process.
  """
  try:
    jax.distributed.initialize()
  except ValueError:
    logging.info("Single-process run (no cluster environment found).")
  except RuntimeError as e:  # already initialised
    logging.info("jax.distributed: %s", e)


def make_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: all devices)."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices, ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def local_batch_size(global_batch: int, mesh: Mesh) -> int:
  """This process's share of a global batch; checks divisibility."""
  n_dev = mesh.devices.size
  if global_batch % n_dev:
    raise ValueError(f"batch size {global_batch} is not divisible by the "
                     f"{n_dev} devices; choose a multiple of {n_dev}")
  return global_batch // jax.process_count()


def to_global(batch: dict, mesh: Mesh) -> dict:
  """Host-local numpy batch -> global jax arrays sharded along 'data'."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def replicate(tree, mesh: Mesh):
  """Places a pytree of arrays replicated on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))
