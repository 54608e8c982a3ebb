"""`python -m stockade ...` is the same as the `stockade` command."""

from stockade.cli import entry

entry()
