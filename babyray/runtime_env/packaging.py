"""A job's local ``working_dir`` and ``py_modules`` as zip packages, and their storage in the GCS.

A package is named by its content: ``gcs://_ray_pkg_<sha256>.zip``, as in Ray. The zip is
deterministic (sorted entries, fixed timestamps), so the same files give the same name and
nodes that already unpacked it reuse their copy. Files matched by ``excludes`` or by a
``.gitignore`` of the directory or its subdirectories (gitignore pattern syntax) are left out.

The GCS keeps a package in its function table (immutable blobs by id, persisted and
recovered like functions) as chunks of at most CHUNK_BYTES under ``<uri>#<i>``, with the
chunk count under ``<uri>``: large single messages are slow to pass between processes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import zipfile
from typing import TYPE_CHECKING, Callable

from babyray.ids import FunctionID
from babyray.protocol import cluster as cm
from babyray.runtime_env.validation import PACKAGE_SCHEME

if TYPE_CHECKING:
    from babyray.api.core import CoreClient

MAX_PACKAGE_BYTES = 500 * 1024 * 1024  # Ray's documented limit for a working_dir or py_module
CHUNK_BYTES = 4 * 1024 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_DIGEST_CHARS = 32


def pack(env: dict) -> tuple[dict, dict[str, bytes]]:
    """``env`` with local paths replaced by package URIs, and the packages by URI.

    Raises:
        ValueError: a directory larger than MAX_PACKAGE_BYTES (after excludes).
    """
    excludes = env.get("excludes", [])
    packed = {k: v for k, v in env.items() if k != "excludes"}
    packages: dict[str, bytes] = {}

    def to_package(path: str, keep_top_level: bool) -> str:
        if path.startswith(PACKAGE_SCHEME):
            return path
        blob = zip_path(path, excludes, keep_top_level)
        uri = package_uri(blob)
        packages[uri] = blob
        return uri

    if "working_dir" in packed:
        packed["working_dir"] = to_package(packed["working_dir"], keep_top_level=False)
    if "py_modules" in packed:
        packed["py_modules"] = [to_package(p, keep_top_level=True) for p in packed["py_modules"]]
    return packed, packages


def package_uri(blob: bytes) -> str:
    return f"{PACKAGE_SCHEME}_ray_pkg_{hashlib.sha256(blob).hexdigest()[:_DIGEST_CHARS]}.zip"


def upload(core: CoreClient, uri: str, blob: bytes) -> None:
    """Store package ``blob`` in the GCS, chunked, through a client (``CoreClient``).

    After each chunk it waits for a small answer of the GCS: a driver's sender coalesces
    what is queued into one message, which would otherwise be the whole package.
    """
    chunks = range(0, max(1, len(blob)), CHUNK_BYTES)
    for i, offset in enumerate(chunks):
        core.ensure_function(
            FunctionID(f"{uri}#{i}"), "runtime_env package chunk", blob[offset : offset + CHUNK_BYTES]
        )
        core.request(core.gcs, lambda req_id: cm.GetNodes(req_id))
    core.ensure_function(FunctionID(uri), "runtime_env package", str(len(chunks)).encode())


def download(fetch: Callable[[str], bytes], uri: str) -> bytes:
    """The package stored by ``upload``, read with ``fetch(id)``; checked against its name.

    Raises:
        ValueError: the bytes read do not hash to the package's name.
    """
    count = int(fetch(uri))
    blob = b"".join(fetch(f"{uri}#{i}") for i in range(count))
    if package_uri(blob) != uri:
        raise ValueError(f"runtime_env package {uri} is corrupt: its content does not match its name")
    return blob


def zip_path(path: str, excludes: list[str], keep_top_level: bool) -> bytes:
    """A zip of the file or directory ``path``: its contents, or (``keep_top_level``) the
    directory or file itself, so that its name is importable from the unpacked root."""
    if os.path.isfile(path):
        files = [(path, os.path.basename(path))]
    else:
        prefix = os.path.basename(path.rstrip(os.sep)) if keep_top_level else ""
        files = [(full, os.path.join(prefix, rel)) for full, rel in _walk(path, excludes)]
    total = sum(os.path.getsize(full) for full, _ in files)
    if total > MAX_PACKAGE_BYTES:
        raise ValueError(
            f"runtime_env package {path} is {total / 2**20:.1f} MiB, more than the "
            f"{MAX_PACKAGE_BYTES // 2**20} MiB limit: leave large files out with "
            "runtime_env['excludes'] or a .gitignore"
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for full, name in files:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.external_attr = (os.stat(full).st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(full, "rb") as f:
                archive.writestr(info, f.read(), compresslevel=1)  # fast: packing is on init()'s path
    return buffer.getvalue()


def _walk(root: str, excludes: list[str]) -> list[tuple[str, str]]:
    """(full path, path relative to ``root``) of every file not excluded, sorted: not by
    ``excludes`` (relative to ``root``), nor by a ``.gitignore`` of its directory or above
    (relative to the directory holding it)."""
    rules: list[tuple[str, list[str]]] = [("", list(excludes))]  # (directory, its patterns)
    found = []

    def skip(rel: str, is_dir: bool) -> bool:
        return any(
            excluded(rel[len(base) + 1 :] if base else rel, is_dir, patterns)
            for base, patterns in rules
            if not base or rel.startswith(base + os.sep)
        )

    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        if ".gitignore" in filenames:
            rules.append((rel_dir, _read_lines(os.path.join(dirpath, ".gitignore"))))
        dirnames[:] = sorted(d for d in dirnames if not skip(os.path.join(rel_dir, d), True))
        for name in sorted(filenames):
            rel = os.path.join(rel_dir, name)
            if not skip(rel, False):
                found.append((os.path.join(dirpath, name), rel))
    return found


def excluded(rel_path: str, is_dir: bool, patterns: list[str]) -> bool:
    """Whether gitignore-style ``patterns`` exclude ``rel_path`` (relative, ``/``-separated).

    A pattern with a ``/`` at its start or middle matches from the root; one without matches
    a name at any depth; a trailing ``/`` matches directories only. ``!`` negation is not
    supported (such patterns are ignored).
    """
    rel_path = rel_path.replace(os.sep, "/")
    name = rel_path.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        if "/" in pattern:
            if fnmatch.fnmatchcase(rel_path, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError:
        return []
