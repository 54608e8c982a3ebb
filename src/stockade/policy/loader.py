"""The public way in: `load_policy("web-api.yaml")` or `load_policy("strict")`."""

from stockade.policy.layers import PRESETS, load_layers
from stockade.policy.resolve import load_policy

__all__ = ["load_policy", "load_layers", "PRESETS"]
