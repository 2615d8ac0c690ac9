"""Adapters: full-size models from other libraries as G or f.

Each module wraps one library (nothing heavy is imported until a model is built) and declares the
row of the adapter specs that reach it (`SCHEME`: `open_clip:...`, `biggan:DIR`, `efficientnet:lite0`,
...), named in the entry-point group `tron.schemes`; its checkpoint kinds are named in the groups
`tron.generators` and `tron.encoders` (tron.registry).
"""
