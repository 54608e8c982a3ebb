"""The project's own writers for the two archive shapes, from layer tars and a config.

Used by the tests and the benchmark to build images with exact contents (whiteouts, opaque
directories, shared layers, deliberate damage); `skopeo copy docker-archive:... oci:...`
produces the same shapes from real images and is used where it is installed.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stockade.image.archive import OCI_MANIFEST
from stockade.image.digest import hex_of, sha256_bytes

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def image_config(layers: Sequence[bytes], config: Mapping[str, Any] | None = None,
                 architecture: str = "amd64") -> bytes:
    """An image config JSON whose diff_ids name the given (uncompressed) layer tars."""
    doc = {
        "architecture": architecture,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(x) for x in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    return json.dumps(doc, sort_keys=True).encode()


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, Any]:
    digest = sha256_bytes(data)
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def oci_layout_files(layers: Sequence[bytes], config: Mapping[str, Any] | None = None, *,
                     ref_name: str | None = None, compress: bool = True,
                     layer_media_type: str | None = None) -> dict[str, bytes]:
    """path -> content of an OCI image layout holding one image."""
    blobs: dict[str, bytes] = {}
    cfg = image_config(layers, config)
    descs = []
    for layer in layers:
        data = gzip.compress(layer, mtime=0) if compress else layer
        mt = layer_media_type or (OCI_LAYER + "+gzip" if compress else OCI_LAYER)
        descs.append({"mediaType": mt, **_blob(blobs, data)})
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **_blob(blobs, cfg)},
        "layers": descs,
    }).encode()
    mdesc: dict[str, Any] = {"mediaType": OCI_MANIFEST, **_blob(blobs, manifest)}
    if ref_name:
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    files = {f"blobs/sha256/{hex_of(d)}": b for d, b in blobs.items()}
    files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [mdesc]}).encode()
    return files


def docker_archive_files(layers: Sequence[bytes], config: Mapping[str, Any] | None = None, *,
                         repo_tags: Sequence[str] = ()) -> dict[str, bytes]:
    """path -> content of a legacy `docker save` archive holding one image."""
    cfg = image_config(layers, config)
    files = {f"{hex_of(sha256_bytes(cfg))}.json": cfg}
    paths = []
    for layer in layers:
        path = f"{hex_of(sha256_bytes(layer))}/layer.tar"
        files[path] = layer
        paths.append(path)
    files["manifest.json"] = json.dumps([{
        "Config": f"{hex_of(sha256_bytes(cfg))}.json", "RepoTags": list(repo_tags), "Layers": paths,
    }]).encode()
    return files


def write_dir(dest: Path, files: Mapping[str, bytes]) -> Path:
    for path, data in files.items():
        full = dest / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
    return dest


def write_tar(dest: Path, files: Mapping[str, bytes]) -> Path:
    with tarfile.open(dest, "w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def config_digest(files: Mapping[str, bytes]) -> str:
    """The image ID of an archive written by this module."""
    if "manifest.json" in files:
        return "sha256:" + json.loads(files["manifest.json"])[0]["Config"].removesuffix(".json")
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + hex_of(index["manifests"][0]["digest"])])
    return str(manifest["config"]["digest"])


def layer_tar(entries: Sequence[tuple[str, str, str | bytes] | tuple[str, str]], *, mode: int | None = None,
              uid: int = 0, gid: int = 0) -> bytes:
    """A layer tar from (name, kind[, payload]) tuples, in order. Kinds: "file" (payload:
    content), "dir", "symlink" / "hardlink" (payload: target), "whiteout" (name: the path
    to delete), "opaque" (name: the directory), "chr" (payload: "major:minor")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            name, kind = entry[0], entry[1]
            payload = entry[2] if len(entry) > 2 else b""
            head, _, base = name.rpartition("/")
            if kind == "whiteout":
                name = f"{head}/.wh.{base}" if head else f".wh.{base}"
                kind = "file"
            elif kind == "opaque":
                name = f"{name}/.wh..wh..opq"
                kind = "file"
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mtime = uid, gid, 1_700_000_000
            data = payload.encode() if isinstance(payload, str) else payload
            if kind == "file":
                info.size = len(data)
                info.mode = 0o644 if mode is None else mode
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755 if mode is None else mode
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data.decode()
                info.mode = 0o777 if kind == "symlink" else 0o644 if mode is None else mode
            elif kind == "chr":
                major, _, minor = data.decode().partition(":")
                info.type, info.mode = tarfile.CHRTYPE, 0o666
                info.devmajor, info.devminor = int(major), int(minor)
            else:
                raise ValueError(kind)
            tar.addfile(info)
    return buf.getvalue()
