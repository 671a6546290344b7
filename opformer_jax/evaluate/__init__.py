"""Scoring as the papers do: protocols, metrics, tables and figures.

`protocols` holds the protocols as objects (Human3.6M, MPI-INF-3DHP, plain),
chosen once by `protocols.for_config(config, data)`; `metrics` the numpy
metric functions and per-protocol accumulators,
`report` the paper-layout tables and results.json, `plots` the figures, and
`run` restores a checkpoint, predicts the test split and writes all of it.
`python -m opformer_jax.evaluate` is the entry point (`__main__`).
"""
