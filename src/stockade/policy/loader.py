"""The public way in: `load_policy("web-api.yaml")` or `load_policy("strict")`."""

from stockade.policy.resolve import PRESETS, load_layers, load_policy

__all__ = ["load_policy", "load_layers", "PRESETS"]
