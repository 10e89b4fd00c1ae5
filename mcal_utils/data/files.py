"""Files of the data layer: the data directory, checksums, atomic writes, guarded downloads.

Rules every loader follows:

* one data directory: the ``data_dir`` argument, else ``$MCAL_DATA_DIR``, else ``~/.cache/mcal``;
* a file that is missing raises ``FileNotFoundError`` naming the file, where it was looked
  for and how to obtain it; a checksum mismatch raises ``ValueError``;
* every file we write appears atomically (temporary file in the same folder + ``os.replace``),
  so an interrupted run never leaves a half file under its final name;
* direct downloads are skipped when ``$MCAL_OFFLINE`` is set (``1``/``true``/``yes``) and give
  up on the first connection failure of a host; every socket operation, name resolution
  included, has a 5 s timeout, so nothing hangs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

try:  # advisory file locks; absent on Windows, where file_lock is a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

DATA_DIR_ENV = "MCAL_DATA_DIR"
OFFLINE_ENV = "MCAL_OFFLINE"
DEFAULT_DATA_DIR = Path("~/.cache/mcal")
NETWORK_TIMEOUT_S = 5.0
_CHUNK = 1 << 20


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path``, else ``$MCAL_DATA_DIR``, else ``~/.cache/mcal`` (not created)."""
    if path is None:
        path = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(path).expanduser().resolve()


def offline() -> bool:
    """True when ``$MCAL_OFFLINE`` asks to skip direct downloads (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_digest(path: Path, expected: str, algorithm: str, *, remedy: str = "") -> None:
    """Raise ``ValueError`` if the ``algorithm`` digest of ``path`` is not ``expected``."""
    got = file_digest(path, algorithm)
    if got != expected.lower():
        raise ValueError(
            f"checksum mismatch for {path}: {algorithm} {got}, expected {expected}. "
            f"The file is corrupt or not the expected one. {remedy}".rstrip()
        )


def atomic_write(
    dest: Path,
    write: Callable[[Path], None],
    before_replace: Callable[[Path], None] | None = None,
    *,
    exclusive: bool = False,
) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``dest``, then move it onto ``dest``.

    The one atomic writer of the package: readers see the old file or the new one, never a part.
    The temporary file ``.<name>.<random>.part`` (same folder) is fsynced, then ``os.replace``-d
    onto ``dest`` (``exclusive=True``: hard-linked, so it fails with ``FileExistsError`` when
    ``dest`` exists -- an exclusive creation with complete contents), then the folder is fsynced.
    ``before_replace(tmp_path)`` runs on the finished temporary file (e.g. to hash it). On any
    error the temporary file is removed and ``dest`` is left untouched. A writer killed mid-way
    leaves only a ``.part`` file, which its owner cleans (see :func:`remove_stale_parts`).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        _fsync(tmp_path, os.O_RDONLY)
        if before_replace is not None:
            before_replace(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        if exclusive:
            os.link(tmp_path, dest)
            tmp_path.unlink()
        else:
            os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync(dest.parent, os.O_RDONLY)
    return dest


def _fsync(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that cannot fsync a directory
        pass
    finally:
        os.close(fd)


def remove_stale_parts(folder: Path, name_glob: str = "*") -> list[Path]:
    """Delete the temporary files ``.<name>.*.part`` a killed :func:`atomic_write` left in ``folder``.

    Only call it while no other writer can be active there (e.g. holding the folder's lock).
    """
    removed = []
    for part in Path(folder).glob(f".{name_glob}.*.part"):
        part.unlink(missing_ok=True)
        removed.append(part)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once at import: os.umask is process-global and not thread-safe to probe


def write_text_atomic(dest: Path, text: str, *, exclusive: bool = False) -> Path:
    """``text`` (UTF-8) to ``dest`` with :func:`atomic_write`."""

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return atomic_write(dest, write, exclusive=exclusive)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (``fcntl.flock``; a no-op where fcntl is unavailable)."""
    if fcntl is None:  # pragma: no cover (Windows)
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class NetworkUnavailable(OSError):
    """A host could not be reached (name resolution, connection, HTTP error or timeout)."""


def _resolve_host(url: str, timeout: float) -> None:
    """Resolve the URL's host within ``timeout`` s (``urlopen``'s own timeout does not cover DNS).

    The lookup runs in a daemon thread, so a resolver that never answers cannot block exit.
    """
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(parts.hostname, port))
        except OSError as e:
            result.append(e)

    worker = threading.Thread(target=lookup, name="mcal-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        raise NetworkUnavailable(f"resolving {parts.hostname} took more than {timeout:g} s")
    if isinstance(result[0], OSError):
        raise NetworkUnavailable(f"cannot resolve {parts.hostname}: {result[0]}")


def download(
    url: str, dest: Path, md5: str, *, timeout: float = NETWORK_TIMEOUT_S, progress: bool | None = None
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its md5.

    Raises ``NetworkUnavailable`` when the host cannot be reached (the caller tries the next
    source) and ``ValueError`` on an md5 mismatch (nothing is written then).
    """
    _resolve_host(url, timeout)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https/http URLs from constants)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise NetworkUnavailable(f"cannot download {url}: {e}") from None

    def write(tmp: Path) -> None:
        h = hashlib.md5()
        total = int(response.headers.get("Content-Length") or 0) or None
        with (
            response,
            open(tmp, "wb") as f,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=None if progress is None else not progress,
                leave=False,
            ) as bar,
        ):
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            except (TimeoutError, OSError) as e:
                raise NetworkUnavailable(f"download of {url} interrupted: {e}") from None
        if h.hexdigest() != md5:
            raise ValueError(f"checksum mismatch for {url}: md5 {h.hexdigest()}, expected {md5}; not saved")

    return atomic_write(dest, write)


def download_first(urls: Sequence[str], dest: Path, md5: str, **kwargs) -> Path:
    """Try the mirrors in order; raise ``NetworkUnavailable`` listing every failure if none works."""
    errors = []
    for url in urls:
        try:
            return download(url, dest, md5, **kwargs)
        except NetworkUnavailable as e:
            errors.append(str(e))
    raise NetworkUnavailable("; ".join(errors) or "no URL given")


def missing_file(path: Path, what: str, how: str) -> FileNotFoundError:
    """The ``FileNotFoundError`` every loader raises: which file, where it was looked for, how to get it."""
    return FileNotFoundError(
        f"{what}: file {path.name!r} not found in {path.parent} (looked for {path}). {how} "
        f"The data directory is the data_dir argument, else ${DATA_DIR_ENV}, else {DEFAULT_DATA_DIR}."
    )
