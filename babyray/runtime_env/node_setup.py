"""Making a worker process run in its ``runtime_env``: env vars, packages, sys.path, cwd.

Packages are fetched from the cluster once per node and unpacked under the node's session
directory (``runtime_resources/<kind>_files/<package>``), named by content hash, so every
worker of the node reuses them. Unpacking goes to a private temporary directory that is
renamed into place, so workers starting together never see a half-written package.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import time
import zipfile
from typing import Callable

from babyray import log
from babyray.runtime_env.packaging import download
from babyray.runtime_env.validation import PACKAGE_SCHEME

_VAR_REFERENCE = re.compile(r"\$\{([^}]*)\}")
SETUP_TIMEOUT = 600.0  # seconds to wait for each chunk of a package (Ray: setup_timeout_seconds)


def apply_env_vars(env: dict) -> None:
    """Set ``env["env_vars"]`` in this process; ``${NAME}`` is NAME's current value ("" if unset)."""
    for name, value in env.get("env_vars", {}).items():
        os.environ[name] = _VAR_REFERENCE.sub(lambda m: os.environ.get(m.group(1), ""), value)


def install_packages(env: dict, session_dir: str, fetch: Callable[[str], bytes]) -> None:
    """Unpack the env's packages (``fetch(id)`` reads a GCS function-table blob), put them first on
    ``sys.path`` (the working_dir ahead of the py_modules) and make the working_dir the cwd."""
    for uri in reversed(env.get("py_modules", [])):
        sys.path.insert(0, unpacked(uri, "py_modules", session_dir, fetch))
    if "working_dir" in env:
        path = unpacked(env["working_dir"], "working_dir", session_dir, fetch)
        sys.path.insert(0, path)
        os.chdir(path)


def unpacked(uri: str, kind: str, session_dir: str, fetch: Callable[[str], bytes]) -> str:
    """The directory holding package ``uri`` on this node; fetched and unpacked if new."""
    name = uri[len(PACKAGE_SCHEME) :].removesuffix(".zip")
    target = os.path.join(session_dir, "runtime_resources", f"{kind}_files", name)
    if os.path.isdir(target):
        return target
    started = time.monotonic()
    blob = download(fetch, uri)
    fetched = time.monotonic()
    staging = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for info in archive.infolist():
            extracted = archive.extract(info, staging)
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                os.chmod(extracted, mode & 0o7777)
    try:
        os.rename(staging, target)
    except OSError:  # another worker of this node put it in place first
        shutil.rmtree(staging, ignore_errors=True)
        if not os.path.isdir(target):
            raise
    log.get_logger("runtime_env").info(
        "runtime_env_package_unpacked",
        uri=uri,
        path=target,
        bytes=len(blob),
        fetch_seconds=round(fetched - started, 3),
        unpack_seconds=round(time.monotonic() - fetched, 3),
    )
    return target
