"""Encoders: the registry (data) and the backends behind one interface."""
from .encoder import Encoder
from .factory import load
from .registry import REGISTRY, ModelSpec, get_spec

__all__ = ["Encoder", "ModelSpec", "REGISTRY", "get_spec", "load"]
