"""A Docker/OCI profile or config as the text of a stockade policy that is proven to load."""

from __future__ import annotations

from dataclasses import dataclass

from stockade.errors import Location, PolicyError, StockadeError


@dataclass(frozen=True)
class Converted:
    text: str  # the policy, YAML
    warnings: tuple[str, ...]  # what the policy could not express


def convert(kind: str, path: str, *, name: str, output: str | None = None) -> Converted:
    """`kind` is docker-seccomp, oci-config or docker-inspect. The result is loaded back
    (parsed, validated, resolved) before it is returned: nobody relies on a policy that
    does not load. `output` names the text in errors (default `<import>`)."""
    from stockade.policy.layers import Layer
    from stockade.policy.render import dump_yaml
    from stockade.policy.resolve import resolve
    from stockade.policy.schema import validate_document
    from stockade.policy.source import MAX_YAML_NODES, node_count, parse_text

    if kind == "docker-seccomp":
        from stockade.importers.docker_seccomp import import_file

        imported = import_file(path, name=name)
    else:
        try:
            from stockade.importers.container_config import import_config
        except ModuleNotFoundError:
            raise StockadeError(f"import {kind} is not available in this build") from None
        imported = import_config(kind, path, name=name)
    nodes = node_count(imported.document)
    if nodes > MAX_YAML_NODES:  # refused before the seconds dumping it would take
        raise PolicyError(Location(path), "the imported policy would be too large",
                          found=f"{nodes} YAML nodes", expected=f"at most {MAX_YAML_NODES} "
                          "(the limit for a policy)")
    text = dump_yaml(imported.document)
    doc = parse_text(text, output or "<import>")
    resolve([Layer(doc, validate_document(doc))])
    return Converted(text, tuple(imported.warnings))
