"""Datasets: the NPZ schema, cameras, the grain input pipeline, converters.

`dataset` (schema: validate, save, load) and `camera` (normalisation,
projection, 2.5D labels) are what everything downstream reads; `input_pipeline`
cuts clip windows and batches for training and evaluation. The converters
(`h36m`, `mpi3dhp`, `mocap`, `synthetic`, sharing `convert_util`) turn the
files of the field into the schema; nothing outside `data/` and `tools/`
imports a converter.
"""
