"""The content-addressed image store.

    ROOT/lock                      flock: registration, rm and prune take it exclusively
    ROOT/layers/<hex>/root/        one unpacked layer, named by its diff_id (uncompressed
    ROOT/layers/<hex>/layer.json   digest), verified before it was moved here; shared by
                                   every image that lists it
    ROOT/images/<hex>.json         one image, named by its config digest (= image ID)
    ROOT/refs.json                 NAME:TAG -> image ID
    ROOT/tmp/load-*/               staging of a load in progress (its .lock is held)
    ROOT/containers/<id>/          a prepared rootfs (stockade.image.rootfs)

A load checks each new layer blob's digest, then unpacks it under tmp/ (within the
Limits, never through a symlink) and checks its diff_id, then, under the store lock,
renames the layers into place and writes the image record and refs with write+rename: an
error or a crash before that point leaves nothing registered, and after it a complete image.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from stockade.errors import StockadeError
from stockade.image import archive, locks
from stockade.image.config import ImageConfig
from stockade.image.container_dir import remove_container_dir
from stockade.image.digest import CHUNK, HashingReader, Reader, check_digest, hex_of
from stockade.image.fsutil import force_rmtree
from stockade.image.limits import Budget, LimitError, Limits
from stockade.image.process import read_in_root
from stockade.image.unpack import UnpackResult, unpack_layer

ENV_STORE = "STOCKADE_STORE"


def default_root() -> Path:
    if env := os.environ.get(ENV_STORE):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/stockade")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "stockade"


def normalize_name(name: str) -> str:
    """docker's familiar form: `docker.io/library/busybox` -> `busybox`, `:latest` added."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if "@" in name:
        raise StockadeError(f"image name with a digest is not a tag: {name!r}")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    if not name or any(c.isspace() for c in name) or name.startswith(("-", ":")):
        raise StockadeError(f"bad image name {name!r}")
    return name


@dataclass(frozen=True)
class LayerMeta:
    diff_id: str
    whiteouts: tuple[str, ...]
    opaques: tuple[str, ...]
    native: bool  # overlayfs whiteout markers are in the tree
    size: int  # bytes of the uncompressed tar
    privileged: tuple[str, ...] = ()  # set-id files and file capabilities (unpack.UnpackResult)


@dataclass(frozen=True)
class ImageRecord:
    id: str  # config digest
    names: tuple[str, ...]
    layers: tuple[str, ...]  # diff_ids, bottom first
    config: ImageConfig
    manifest_digest: str | None
    loaded: float
    size: int  # sum of the layers' uncompressed tar sizes

    @property
    def short_id(self) -> str:
        return hex_of(self.id)[:12]


@dataclass(frozen=True)
class PruneReport:
    images: tuple[str, ...]
    layers: tuple[str, ...]
    staging: int
    containers: int


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Prefixed(io.RawIOBase):
    """Give back the bytes read to sniff a compression magic."""

    def __init__(self, head: bytes, rest: Reader) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.layers_dir = self.root / "layers"
        self.images_dir = self.root / "images"
        self.tmp_dir = self.root / "tmp"
        self.containers_dir = self.root / "containers"
        self.refs_path = self.root / "refs.json"
        self.lock_path = self.root / "lock"

    def ensure(self) -> None:
        for d in (self.root, self.layers_dir, self.images_dir, self.tmp_dir, self.containers_dir):
            d.mkdir(mode=0o700 if d == self.root else 0o755, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self, *, shared: bool = False) -> Iterator[None]:
        self.ensure()
        with locks.flocked(self.lock_path, shared=shared):
            yield

    # -- reading -------------------------------------------------------------------------

    def refs(self) -> dict[str, str]:
        try:
            data = json.loads(self.refs_path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise StockadeError(f"{self.refs_path}: corrupt ({exc})") from None
        return {str(k): str(v) for k, v in data.items()}

    def _record_path(self, image_id: str) -> Path:
        return self.images_dir / f"{hex_of(image_id)}.json"

    def record(self, image_id: str) -> ImageRecord:
        try:
            doc = json.loads(self._record_path(image_id).read_bytes())
        except FileNotFoundError:
            raise StockadeError(f"no such image: {image_id}") from None
        names = tuple(sorted(n for n, i in self.refs().items() if i == image_id))
        return ImageRecord(
            id=doc["id"],
            names=names,
            layers=tuple(doc["layers"]),
            config=ImageConfig.from_image_json(doc["config"]),
            manifest_digest=doc.get("manifest_digest"),
            loaded=float(doc["loaded"]),
            size=int(doc["size"]),
        )

    def raw_config(self, image_id: str) -> dict[str, Any]:
        doc = json.loads(self._record_path(image_id).read_bytes())
        cfg: dict[str, Any] = doc["config"]
        return cfg

    def images(self) -> list[ImageRecord]:
        if not self.images_dir.is_dir():
            return []
        ids = sorted("sha256:" + p.stem for p in self.images_dir.glob("*.json"))
        return [self.record(i) for i in ids]

    def resolve(self, ref: str) -> ImageRecord:
        """NAME[:TAG], a full `sha256:` image ID or manifest digest, NAME@DIGEST, or a unique
        ID prefix (12+ hex, as `ls` shows)."""
        refs = self.refs()
        if "@" in ref:
            ref = ref.split("@", 1)[1]
        if ref.startswith("sha256:") and len(ref) == 71 and not self._record_path(ref).exists():
            check_digest(ref, "image digest")
            by_manifest = [r for r in self.images() if r.manifest_digest == ref]
            if by_manifest:
                return by_manifest[0]
        if ref.startswith("sha256:") or (len(ref) >= 12 and all(c in "0123456789abcdef" for c in ref)):
            hexpart = ref.removeprefix("sha256:")
            if len(hexpart) == 64:
                return self.record(check_digest("sha256:" + hexpart, "image ID"))
            matches = [p.stem for p in self.images_dir.glob(f"{hexpart}*.json")] if self.images_dir.is_dir() else []
            if len(matches) == 1:
                return self.record("sha256:" + matches[0])
            if len(matches) > 1:
                raise StockadeError(f"image ID prefix {ref!r} is ambiguous")
            if ref.startswith("sha256:"):
                raise StockadeError(f"no such image: {ref}")
        name = normalize_name(ref)
        if name not in refs:
            raise StockadeError(f"no such image: {ref} (see `stockade image ls`)")
        return self.record(refs[name])

    def layer_root(self, diff_id: str) -> Path:
        return self.layers_dir / hex_of(diff_id) / "root"

    def layer_meta(self, diff_id: str) -> LayerMeta:
        try:
            doc = json.loads((self.layers_dir / hex_of(diff_id) / "layer.json").read_bytes())
        except FileNotFoundError:
            raise StockadeError(f"layer {diff_id} is missing from the store {self.root}") from None
        return LayerMeta(doc["diff_id"], tuple(doc["whiteouts"]), tuple(doc["opaques"]),
                         bool(doc["native"]), int(doc["size"]), tuple(doc.get("privileged", ())))

    def privileged_files(self, image: ImageRecord) -> tuple[str, ...]:
        """Set-id files and files with capabilities the image's layers ship (for
        resolve_process's `image_privileges`), bottom layer first."""
        return tuple(dict.fromkeys(p for d in image.layers for p in self.layer_meta(d).privileged))

    def read_file(self, image: ImageRecord, rel: str) -> bytes | None:
        """A small file of the image as its merged root would show it, read from the layers
        without mounting anything (for `run --dry-run`: /etc/passwd, /etc/group). Symlinks
        are not followed; whiteouts and opaque directories are honoured."""
        rel = "/".join(p for p in rel.split("/") if p)
        prefixes = [rel.rsplit("/", i)[0] for i in range(rel.count("/"), -1, -1)] if rel else []
        for diff_id in reversed(image.layers):  # top layer first
            meta = self.layer_meta(diff_id)
            root = self.layer_root(diff_id)
            for i, prefix in enumerate(prefixes):  # lstat each component: no symlink is followed
                try:
                    st = os.lstat(root / prefix)
                except FileNotFoundError:
                    break
                last = i == len(prefixes) - 1
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    return None  # an overlayfs whiteout marker
                if last:
                    return read_in_root(root, rel)
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a file or symlink hides everything below it
            if any(p in meta.whiteouts for p in prefixes):
                return None
            parents = ["", *prefixes[:-1]]
            if any(p in meta.opaques for p in parents):
                return None
        return None

    def has_layer(self, diff_id: str) -> bool:
        return (self.layers_dir / hex_of(diff_id) / "layer.json").is_file()

    # -- loading -------------------------------------------------------------------------

    def load(self, path: Path, tags: Sequence[str] = (), limits: Limits | None = None) -> list[ImageRecord]:
        """Verify and register every image of a docker-save archive or OCI layout, within
        `limits` (default: Limits.from_env())."""
        budget = Budget(limits or Limits.from_env())
        self.ensure()
        rootless = os.geteuid() != 0
        staging = Path(os.path.realpath(self.tmp_dir)) / f"load-{secrets.token_hex(8)}"
        lock_fd = locks.hold(staging.with_suffix(".lock"))  # before the dir: prune checks it
        staging.mkdir(mode=0o700)
        try:
            with archive.open_source(path) as src:
                images = archive.read_images(src)
                if tags and len(images) != 1:
                    raise StockadeError(f"{path}: --tag needs an archive with exactly one image "
                                        f"(this one has {len(images)})")
                staged: dict[str, Path] = {}
                for img in images:
                    for layer in img.layers:
                        if layer.diff_id in staged or self.has_layer(layer.diff_id):
                            continue  # already verified once: not read again
                        staged[layer.diff_id] = self._stage_layer(src, layer, staging, rootless, budget)
            return self._register(images, staged, [normalize_name(t) for t in tags])
        finally:
            try:
                force_rmtree(staging)
            finally:  # whatever is left (it should be nothing), prune may now take it
                os.close(lock_fd)
                with contextlib.suppress(FileNotFoundError):
                    staging.with_suffix(".lock").unlink()

    def _stage_layer(self, src: archive.Source, layer: archive.LayerRef, staging: Path, rootless: bool,
                     budget: Budget) -> Path:
        self._verify_blob(src, layer, budget.limits)  # before a single byte of it is unpacked
        dest = staging / hex_of(layer.diff_id)
        (dest / "root").mkdir(parents=True, mode=0o755)
        with src.open(layer.path) as raw:
            outer = HashingReader(raw)  # the blob as stored
            tar_input = self._decompressed(src, layer, outer)
            # An uncompressed blob is its own content: hash it once, not twice.
            content = tar_input if isinstance(tar_input, HashingReader) else outer
            try:
                result: UnpackResult = unpack_layer(tar_input, dest / "root", rootless=rootless, budget=budget)
                tail = budget.metered(tar_input)  # the digest covers what follows the tar's end
                while tail.read(CHUNK):
                    pass
                outer.drain()
            except (OSError, EOFError, StockadeError) as exc:
                raise StockadeError(f"{src.label}: {layer.path}: {exc}") from None
        # Checked again on what was unpacked: a directory source can change between reads.
        self._check_size(src, layer, outer.size)
        self._check_blob_digest(src, layer, outer)
        if content.digest != layer.diff_id:
            raise StockadeError(f"{src.label}: digest mismatch for layer {layer.path}: the "
                                f"config's diff_id is {layer.diff_id}, the content is {content.digest}")
        meta = {"diff_id": layer.diff_id, "whiteouts": list(result.whiteouts),
                "opaques": list(result.opaques), "native": result.native, "size": content.size,
                "privileged": list(result.privileged)}
        (dest / "layer.json").write_text(json.dumps(meta))
        return dest

    @staticmethod
    def _decompressed(src: archive.Source, layer: archive.LayerRef, outer: HashingReader) -> IO[bytes] | HashingReader:
        """The tar stream of a layer blob: `outer` itself (or a buffer over it) when it is
        plain, a HashingReader over the decompressed bytes when it is gzip."""
        compression = layer.compression
        stream: IO[bytes] | HashingReader = outer
        if compression == archive.SNIFF:
            head = outer.read(4)
            if head[:2] == b"\x1f\x8b":
                compression = "gzip"
            elif head == b"\x28\xb5\x2f\xfd":
                raise StockadeError(f"{src.label}: {layer.path}: zstd layers are not supported")
            else:
                compression = ""
            stream = io.BufferedReader(_Prefixed(head, outer))
        if compression == "gzip":
            return HashingReader(gzip.GzipFile(fileobj=cast(IO[bytes], stream), mode="rb"))
        return stream

    @classmethod
    def _verify_blob(cls, src: archive.Source, layer: archive.LayerRef, limits: Limits) -> None:
        """Hash the blob as stored and compare it with the digest that names it (a plain
        docker-save layer is its own diff_id) before anything is unpacked from it. Only a
        gzip blob with no digest of its own (never written by docker or skopeo) is left to
        the diff_id check after unpacking, in the private staging directory."""
        with src.open(layer.path) as raw:
            blob = HashingReader(raw)
            head = blob.read(2)
            while blob.read(CHUNK):
                if blob.size > limits.max_size:
                    raise LimitError(f"layer size ({layer.path})", blob.size, limits.max_size, "--max-size")
        cls._check_size(src, layer, blob.size)
        plain = layer.compression != "gzip" and head != b"\x1f\x8b"
        if layer.blob_digest is None and plain and blob.digest != layer.diff_id:
            raise StockadeError(f"{src.label}: digest mismatch for layer {layer.path}: the "
                                f"config's diff_id is {layer.diff_id}, the content is {blob.digest}")
        cls._check_blob_digest(src, layer, blob)

    @staticmethod
    def _check_size(src: archive.Source, layer: archive.LayerRef, size: int) -> None:
        if layer.size is not None and size != layer.size:
            raise StockadeError(f"{src.label}: {layer.path}: size {size} does not match "
                                f"the manifest's {layer.size}")

    @staticmethod
    def _check_blob_digest(src: archive.Source, layer: archive.LayerRef, blob: HashingReader) -> None:
        if layer.blob_digest is not None and blob.digest != layer.blob_digest:
            raise StockadeError(f"{src.label}: digest mismatch for layer {layer.path}: expected "
                                f"{layer.blob_digest}, got {blob.digest}")

    def _register(self, images: list[archive.SourceImage], staged: dict[str, Path], tags: list[str]) -> list[ImageRecord]:
        with self.locked():
            sizes: dict[str, int] = {}
            for diff_id, dir_ in staged.items():
                final = self.layers_dir / hex_of(diff_id)
                if not final.exists():  # a concurrent load may have won: same bytes, keep theirs
                    os.rename(dir_, final)
            refs = self.refs()
            for img in images:
                for d in img.layers:
                    if not self.has_layer(d.diff_id):  # an rm/prune ran between our check and now
                        raise StockadeError(f"layer {d.diff_id} was removed while loading; load again")
                    sizes[d.diff_id] = self.layer_meta(d.diff_id).size
                doc = {
                    "id": img.config_digest,
                    "layers": [x.diff_id for x in img.layers],
                    "config": json.loads(img.config),
                    "manifest_digest": img.manifest_digest,
                    "loaded": time.time(),
                    "size": sum(sizes[x.diff_id] for x in img.layers),
                }
                ImageConfig.from_image_json(doc["config"])  # refuse a bad config before it is stored
                rec = self._record_path(img.config_digest)
                if not rec.exists():
                    _write_atomic(rec, json.dumps(doc, sort_keys=True).encode())
                for name in (*[normalize_name(n) for n in img.names], *tags):
                    refs[name] = img.config_digest  # a tag moves to the image loaded last
            _write_atomic(self.refs_path, json.dumps(refs, sort_keys=True, indent=1).encode())
        return [self.record(img.config_digest) for img in images]

    # -- removing ------------------------------------------------------------------------

    def remove(self, ref: str, *, force: bool = False) -> list[str]:
        """Untag NAME[:TAG] (the image goes with its last name), or remove an image by ID with
        all its names. Returns what was removed; layers no image uses are deleted."""
        with self.locked():
            rec = self.resolve(ref)
            refs = self.refs()
            by_id = "@" in ref or ref.startswith("sha256:") or (
                len(ref) >= 12 and hex_of(rec.id).startswith(ref))
            removed: list[str] = []
            if by_id:
                if len(rec.names) > 1 and not force:
                    raise StockadeError(f"image {rec.short_id} has several names "
                                        f"({', '.join(rec.names)}); remove them or use --force")
                drop = list(rec.names)
            else:
                drop = [normalize_name(ref)]
            for n in drop:
                refs.pop(n, None)
                removed.append(f"untagged {n}")
            _write_atomic(self.refs_path, json.dumps(refs, sort_keys=True, indent=1).encode())
            if rec.id not in refs.values():
                if rec.id in self._live_images() and not force:
                    raise StockadeError(f"image {rec.short_id} is in use by a running container")
                self._record_path(rec.id).unlink()
                removed.append(f"deleted {rec.id}")
            removed += [f"deleted layer {d}" for d in self._gc_layers()]
        return removed

    def _live_containers(self, *, kept: bool = False) -> list[dict[str, Any]]:
        """Containers whose prepared rootfs is in use (and, with `kept`, kept ones)."""
        out: list[dict[str, Any]] = []
        if not self.containers_dir.is_dir():
            return out
        for d in self.containers_dir.iterdir():
            if d.is_dir() and (locks.is_held(d / "lock") or (kept and (d / "keep").exists())):
                with contextlib.suppress(FileNotFoundError, ValueError):
                    out.append(json.loads((d / "container.json").read_bytes()))
        return out

    def _live_images(self) -> set[str]:
        return {c["image"] for c in self._live_containers()}

    def _gc_layers(self) -> list[str]:
        used = {d for rec_path in self.images_dir.glob("*.json")
                for d in json.loads(rec_path.read_bytes())["layers"]}
        # a kept container's writable layer only makes sense over its lower layers
        used |= {d for c in self._live_containers(kept=True) for d in c["layers"]}
        gone = []
        for d in self.layers_dir.iterdir():
            diff_id = "sha256:" + d.name
            if diff_id not in used:
                # rename first: a half-deleted tree must never look like a layer
                trash = self.tmp_dir / f"del-{d.name}-{secrets.token_hex(4)}"
                os.rename(d, trash)
                force_rmtree(trash)
                gone.append(diff_id)
        return gone

    def prune(self, *, all_images: bool = False) -> PruneReport:
        """Delete untagged images (with `all_images`: every image no container uses, and the
        directories of kept containers), unused layers, and what crashed loads and
        containers left behind."""
        with self.locked():
            refs = self.refs()
            live = self._live_images()
            images = []
            for p in sorted(self.images_dir.glob("*.json")):
                image_id = "sha256:" + p.stem
                if image_id in live or (image_id in refs.values() and not all_images):
                    continue
                for n in [n for n, i in refs.items() if i == image_id]:
                    refs.pop(n)
                p.unlink()
                images.append(image_id)
            _write_atomic(self.refs_path, json.dumps(refs, sort_keys=True, indent=1).encode())
            staging = 0
            for p in self.tmp_dir.iterdir():
                if p.suffix == ".lock":
                    continue
                if p.name.startswith("load-") and locks.is_held(p.with_suffix(".lock")):
                    continue
                force_rmtree(p)
                with contextlib.suppress(FileNotFoundError):
                    p.with_suffix(".lock").unlink()
                staging += 1
            containers = 0
            for d in self.containers_dir.iterdir():
                kept = (d / "keep").exists() and not all_images
                if d.is_dir() and not locks.is_held(d / "lock") and not kept:
                    remove_container_dir(d)
                    containers += 1
            layers = self._gc_layers()
        return PruneReport(tuple(images), tuple(layers), staging, containers)
