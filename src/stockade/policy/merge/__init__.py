"""Merging a policy's layers, one merger per section (docs/POLICY.md, "Merge rules").

Each merger takes the layers in order through `add(layer)` (reading only its own section)
and hands back its frozen model section. policy.resolve feeds every layer to every merger
in the order the sections are written in a file, so with several mistakes the user is told
about the first one, as a reader would meet them.
"""
