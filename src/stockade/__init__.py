"""stockade: one policy, many enforcers."""
