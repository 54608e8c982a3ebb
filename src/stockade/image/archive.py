"""Readers for the two archive shapes people hand around, both as a directory or a tar:

- a `docker save` archive: `manifest.json` lists Config and Layers (uncompressed tars whose
  digest is the layer's diff_id); docker >= 25 also writes an OCI index next to it;
- an OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/...` (what `skopeo copy ...
  oci:DIR` and `stockade.image.export` write); layers may be gzip-compressed.

Everything read here is attacker input: JSON is size-capped and digest-checked before it is
parsed, paths inside the archive must stay inside it, and media types are an allow-list.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from stockade.errors import StockadeError
from stockade.image.digest import check_digest, hex_of, sha256_bytes
from stockade.image.limits import BoundedTarInfo

MAX_JSON = 8 << 20  # manifests and configs are kilobytes; refuse to buffer a huge "JSON" blob
MAX_MEMBERS = 100_000  # files of an archive (not of its layers): tarfile keeps each in memory

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG_TYPES = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
# media type -> compression ("" = plain tar)
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
ZSTD_TYPES = {
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}
SNIFF = "sniff"  # docker-archive layers carry no media type: look at the magic bytes


@dataclass(frozen=True)
class LayerRef:
    path: str  # inside the archive
    blob_digest: str | None  # digest of the blob as stored (None: only the diff_id is known)
    size: int | None
    compression: str  # "", "gzip" or SNIFF
    diff_id: str  # digest of the uncompressed tar, from the (verified) config


@dataclass(frozen=True)
class SourceImage:
    config_digest: str
    config: bytes  # verified against config_digest
    layers: tuple[LayerRef, ...]
    names: tuple[str, ...]
    manifest_digest: str | None


class Source(Protocol):
    label: str

    def open(self, path: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def exists(self, path: str) -> bool: ...


def _clean(path: str) -> str:
    """An archive-internal path, normalised; `..` and absolute paths are refused."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts or not parts:
        raise StockadeError(f"archive path escapes the archive: {path!r}")
    return "/".join(parts)


class DirSource:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.label = str(root)

    def _path(self, path: str) -> Path:
        full = (self.root / _clean(path)).resolve()
        if not full.is_relative_to(self.root):  # a symlink inside the layout pointing out
            raise StockadeError(f"{self.label}: {path} points outside the image layout")
        return full

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        # O_NONBLOCK: a FIFO (or a device) planted in the layout must not hang the load
        try:
            fd = os.open(self._path(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StockadeError(f"{self.label}: missing blob {path}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StockadeError(f"{self.label}: {path} is not a regular file")
            yield f


class TarSource:
    def __init__(self, path: Path) -> None:
        self.label = str(path)
        try:
            # r:* also accepts `docker save | gzip`; random access needs a real file.
            self._tar = tarfile.open(path, "r:*", tarinfo=BoundedTarInfo)  # noqa: SIM115 - closed by close()
            self._members: dict[str, tarfile.TarInfo] = {}
            while (m := self._tar.next()) is not None:
                if len(self._members) >= MAX_MEMBERS:
                    raise StockadeError(f"{path}: more than {MAX_MEMBERS} files; an image archive "
                                        "holds a few per layer")
                if m.name.strip("./"):
                    self._members[_clean(m.name)] = m
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise StockadeError(f"{path}: not a readable tar archive ({_tar_reason(exc)}); expected "
                                "a `docker save` archive (plain or compressed) or an OCI layout "
                                "directory") from None

    def close(self) -> None:
        self._tar.close()

    def exists(self, path: str) -> bool:
        return _clean(path) in self._members

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        member = self._members.get(_clean(path))
        if member is None:
            raise StockadeError(f"{self.label}: missing blob {path}")
        try:
            f = self._tar.extractfile(member)  # follows in-archive symlinks (docker >= 25)
        except (tarfile.TarError, KeyError) as exc:
            raise StockadeError(f"{self.label}: cannot read {path}: {exc}") from None
        if f is None:
            raise StockadeError(f"{self.label}: {path} is not a file")
        with f:
            yield f


def _tar_reason(exc: BaseException) -> str:
    """tarfile's reason on one line: for a file of no format it knows, its message lists
    every method it tried, one per line."""
    text = str(exc)
    if text.startswith("file could not be opened successfully"):
        return "neither tar nor gzip, bzip2 or xz of a tar"
    return " ".join(text.split()) or type(exc).__name__


def read_json(src: Source, path: str, digest: str | None = None, size: int | None = None) -> tuple[Any, bytes]:
    with src.open(path) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise StockadeError(f"{src.label}: {path} is larger than {MAX_JSON} bytes")
    if size is not None and len(data) != size:
        raise StockadeError(f"{src.label}: {path}: size {len(data)} does not match the descriptor's {size}")
    if digest is not None and sha256_bytes(data) != digest:
        raise StockadeError(
            f"{src.label}: digest mismatch for {path}: expected {digest}, got {sha256_bytes(data)}"
        )
    try:
        return json.loads(data), data
    except (ValueError, UnicodeDecodeError) as exc:
        raise StockadeError(f"{src.label}: {path} is not valid JSON ({exc})") from None


def _diff_ids(src: Source, config: Any, nlayers: int) -> list[str]:
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise StockadeError(f"{src.label}: image config has no rootfs.diff_ids")
    if len(ids) != nlayers:
        raise StockadeError(
            f"{src.label}: manifest lists {nlayers} layers but the config has {len(ids)} diff_ids"
        )
    return [check_digest(d, f"{src.label}: rootfs.diff_ids") for d in ids]


def _docker_images(src: Source) -> list[SourceImage]:
    manifest, _ = read_json(src, "manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise StockadeError(f"{src.label}: manifest.json is not a list of images")
    out = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise StockadeError(f"{src.label}: manifest.json entry without Config")
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise StockadeError(f"{src.label}: manifest.json entry without a Layers list")
        cfg_path = entry["Config"]
        named = _digest_from_path(cfg_path)
        config, raw = read_json(src, cfg_path, named)
        digest = named or sha256_bytes(raw)
        diff_ids = _diff_ids(src, config, len(layers))
        refs = tuple(
            LayerRef(path=p, blob_digest=_digest_from_path(p), size=None, compression=SNIFF, diff_id=d)
            for p, d in zip(layers, diff_ids, strict=True)
        )
        tags = entry.get("RepoTags") or []
        out.append(SourceImage(digest, raw, refs, tuple(t for t in tags if isinstance(t, str)), None))
    return out


def _digest_from_path(path: str) -> str | None:
    """`blobs/sha256/<hex>` and legacy `<hex>.json` name their own digest."""
    name = path.rsplit("/", 1)[-1].removesuffix(".json")
    if path.startswith("blobs/sha256/") or (path.endswith(".json") and "/" not in path):
        try:
            return check_digest("sha256:" + name, path)
        except StockadeError:
            return None
    return None


def _blob_path(desc: dict[str, Any], what: str) -> tuple[str, str, int | None]:
    digest = check_digest(desc.get("digest"), what)
    size = desc.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise StockadeError(f"{what}: bad size {size!r}")
    return f"blobs/sha256/{hex_of(digest)}", digest, size


def _host_platform() -> tuple[str, str]:
    from stockade.linux.syscall_table import GOARCH, canonical_arch

    machine = os.uname().machine
    arch = canonical_arch(machine) or machine
    return "linux", GOARCH.get(arch, arch)


def _manifests(src: Source, desc: dict[str, Any], names: tuple[str, ...], depth: int = 0) -> Iterator[tuple[dict[str, Any], str, tuple[str, ...]]]:
    """Walk an index down to image manifests, keeping those for this host's platform."""
    if depth > 4:
        raise StockadeError(f"{src.label}: image index nested too deeply")
    mt = desc.get("mediaType")
    path, digest, size = _blob_path(desc, f"{src.label}: descriptor")
    if mt in (OCI_INDEX, DOCKER_LIST):
        index, _ = read_json(src, path, digest, size)
        kids = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(kids, list):
            raise StockadeError(f"{src.label}: index {digest} has no manifests")
        yield from _pick_platform(src, kids, names, depth + 1)
    elif mt in (OCI_MANIFEST, DOCKER_MANIFEST):
        manifest, _ = read_json(src, path, digest, size)
        yield manifest, digest, names
    else:
        raise StockadeError(f"{src.label}: unknown media type {mt!r} for manifest {digest}")


def _pick_platform(src: Source, descs: list[Any], names: tuple[str, ...], depth: int) -> Iterator[tuple[dict[str, Any], str, tuple[str, ...]]]:
    want = _host_platform()
    platformed = [d for d in descs if isinstance(d, dict) and isinstance(d.get("platform"), dict)]
    if platformed and len(platformed) == len(descs):
        match = [d for d in platformed if (d["platform"].get("os"), d["platform"].get("architecture")) == want]
        if not match:
            raise StockadeError(f"{src.label}: no manifest for platform {want[0]}/{want[1]}")
        descs = match[:1]
    for d in descs:
        if not isinstance(d, dict):
            raise StockadeError(f"{src.label}: index entry is not an object")
        yield from _manifests(src, d, names + _names_of(d), depth)


def _names_of(desc: dict[str, Any]) -> tuple[str, ...]:
    ann = desc.get("annotations")
    if not isinstance(ann, dict):
        return ()
    full = ann.get("io.containerd.image.name")
    if isinstance(full, str):
        return (full,)
    ref = ann.get("org.opencontainers.image.ref.name")
    # A bare tag ("latest") names no repository; `image load --tag` can supply one.
    if isinstance(ref, str) and (":" in ref or "/" in ref):
        return (ref,)
    return ()


def _oci_images(src: Source) -> list[SourceImage]:
    layout, _ = read_json(src, "oci-layout")
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise StockadeError(f"{src.label}: unsupported oci-layout version")
    index, _ = read_json(src, "index.json")
    descs = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descs, list) or not descs:
        raise StockadeError(f"{src.label}: index.json lists no manifests")
    out = []
    for manifest, mdigest, names in _pick_platform(src, descs, (), 0):
        if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
            raise StockadeError(f"{src.label}: manifest {mdigest} is not schemaVersion 2")
        cdesc = manifest.get("config")
        if not isinstance(cdesc, dict) or cdesc.get("mediaType") not in CONFIG_TYPES:
            mt = cdesc.get("mediaType") if isinstance(cdesc, dict) else None
            raise StockadeError(f"{src.label}: unknown media type {mt!r} for the image config")
        cpath, cdigest, csize = _blob_path(cdesc, f"{src.label}: config")
        config, raw = read_json(src, cpath, cdigest, csize)
        ldescs = manifest.get("layers")
        if not isinstance(ldescs, list):
            raise StockadeError(f"{src.label}: manifest {mdigest} has no layers list")
        diff_ids = _diff_ids(src, config, len(ldescs))
        layers = []
        for ld, diff_id in zip(ldescs, diff_ids, strict=True):
            if not isinstance(ld, dict):
                raise StockadeError(f"{src.label}: layer descriptor is not an object")
            mt = ld.get("mediaType")
            if mt in ZSTD_TYPES:
                raise StockadeError(f"{src.label}: zstd-compressed layers are not supported ({mt}); "
                                    "re-export with gzip or uncompressed layers")
            if mt not in LAYER_TYPES:
                raise StockadeError(f"{src.label}: unknown media type {mt!r} for a layer")
            path, digest, size = _blob_path(ld, f"{src.label}: layer")
            layers.append(LayerRef(path, digest, size, LAYER_TYPES[str(mt)], diff_id))
        out.append(SourceImage(cdigest, raw, tuple(layers), tuple(dict.fromkeys(names)), mdigest))
    return out


def read_images(src: Source) -> list[SourceImage]:
    """The images an archive holds; `manifest.json` (docker save) wins over `index.json`
    because it carries RepoTags and docker >= 25 writes both for the same blobs."""
    if src.exists("manifest.json"):
        return _docker_images(src)
    if src.exists("index.json"):
        return _oci_images(src)
    raise StockadeError(f"{src.label}: neither a docker save archive (manifest.json) "
                        "nor an OCI image layout (index.json)")


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[Source]:
    if path.is_dir():
        yield DirSource(path)
    elif path.is_file():
        src = TarSource(path)
        try:
            yield src
        finally:
            src.close()
    else:
        raise StockadeError(f"{path}: no such file or directory")


