"""sparsenet: prune trained dense MLPs and run them as sparse or shrunk networks."""

from .formats import FORMATS, convert
from .io import load_network, save_network
from .model import Layer, MaskedNetwork, Masks, Network
from .prune import PRUNERS, SCOPES, prune

__all__ = [
    "FORMATS",
    "PRUNERS",
    "SCOPES",
    "Layer",
    "MaskedNetwork",
    "Masks",
    "Network",
    "convert",
    "load_network",
    "prune",
    "save_network",
]
