"""Adapters: full-size models from other libraries as G or f.

Importing this package registers the adapter classes by their checkpoint `kind`; the heavy
libraries (diffusers, pytorch-pretrained-biggan) are imported only when a model is built.
`tron.components` turns command-line specs (`open_clip:...`, `biggan:DIR`, ...) into models.
"""
from . import biggan, consistency, plugin, torchvision  # noqa: F401
