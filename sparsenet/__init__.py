"""sparsenet: prune trained dense MLPs and run them as sparse or shrunk networks."""

__version__ = "0.2.0"

from .errors import FileFormatError
from .export import load_pruned, save_pruned
from .formats import FORMATS, convert
from .importers import ImportedModel, load_model
from .io import load_network, save_network
from .layers import LAYER_KINDS
from .model import Layer, MaskedNetwork, Masks, Network
from .prune import PRUNERS, SCOPES, prune

__all__ = [
    "FORMATS",
    "ImportedModel",
    "FileFormatError",
    "LAYER_KINDS",
    "PRUNERS",
    "SCOPES",
    "Layer",
    "MaskedNetwork",
    "Masks",
    "Network",
    "convert",
    "load_model",
    "load_network",
    "load_pruned",
    "prune",
    "save_network",
    "save_pruned",
    "__version__",
]
