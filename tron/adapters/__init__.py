"""Adapters: full-size models from other libraries as G or f.

Each module wraps one library; nothing heavy is imported until a model is built. The table of
command-line specs that reach them (`open_clip:...`, `biggan:DIR`, `efficientnet:lite0`, ...) is
`tron.components.SCHEMES`; checkpoint kinds are entry points (`tron.generators`, `tron.encoders`).
"""
