"""Pipelines that run hvitgan-tf on existing engines: Apache Beam generation, TFX training."""
