"""Where studies live: storage URLs parsed once, Optuna storages, and the lock under which workers claim trials."""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna

JOURNAL_SUFFIXES = (".log", ".journal")
STUDY_DB = "study.db"
"""The SQLite file a run folder keeps its studies in (its default storage)."""


DIALECTS = ("sqlite", "postgresql", "mysql")
"""Database servers (and SQLite) that Optuna's RDB storage is tested with here or documented for."""


class StorageError(ValueError):
    """A storage that cannot be used; printed as one line naming `storage=`."""


@dataclass(frozen=True, slots=True)
class StorageURL:
    """A storage named by the user: an SQLite file, an Optuna journal file, or a database server."""

    url: str
    kind: Literal["sqlite", "journal", "server"]
    dialect: str
    """'sqlite', 'journal', or the SQLAlchemy dialect of a server ('postgresql', 'mysql')."""
    path: Path | None
    """The file of an SQLite or journal storage (None for a server)."""

    @classmethod
    def parse(cls, url: str) -> StorageURL:
        """Check the form of `url` (no connection is made); a StorageError says how to write it."""
        text = url.strip()
        if text.startswith("sqlite:"):
            path = text.removeprefix("sqlite:///") if text.startswith("sqlite:///") else ""
            if not path or path == ":memory:" or path.startswith("file::memory:"):
                raise StorageError(
                    f"storage={url!r} keeps the study in memory, where no rerun or worker finds it; "
                    f"give a file: sqlite:///{STUDY_DB}"
                )
            folder = Path(path).parent
            if not folder.is_dir():
                raise StorageError(f"storage={url!r}: folder {str(folder)!r} does not exist; create it first")
            return cls(text, "sqlite", "sqlite", Path(path))
        if "://" not in text:
            if text.endswith(JOURNAL_SUFFIXES):
                folder = Path(text).parent
                if not folder.is_dir():
                    raise StorageError(f"storage={url!r}: folder {str(folder)!r} does not exist; create it first")
                return cls(text, "journal", "journal", Path(text))
            hint = f"sqlite:///{text}" if text.endswith((".db", ".sqlite", ".sqlite3")) else f"sqlite:///{STUDY_DB}"
            raise StorageError(
                f"storage={url!r} is not a storage URL; write e.g. {hint}, study.log (a journal file) "
                "or postgresql://USER@HOST/DB"
            )
        scheme, rest = text.split("://", 1)
        dialect = scheme.split("+", 1)[0]
        if dialect not in DIALECTS:
            raise StorageError(f"storage={url!r}: database {dialect!r} is not supported; use {', '.join(DIALECTS)}")
        if scheme == "postgresql" and not _importable("psycopg2"):
            if not _importable("psycopg"):
                raise StorageError(
                    f"storage={url!r}: PostgreSQL needs a driver; pip install 'explorer[postgres]' (psycopg 3)"
                )
            text = f"postgresql+psycopg://{rest}"  # SQLAlchemy's plain scheme means psycopg2
        return cls(text, "server", dialect, None)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


STALE_LOCK_S = 5.0
"""How long a journal's lock may stand, with the journal unchanged, before opening it takes the lock
as a killed writer's: an append holds it for milliseconds."""


def clear_stale_lock(path: Path, wait_s: float | None = None) -> bool:
    """Remove the lock a writer killed mid-append left beside journal `path` (Optuna's lock is a
    symlink named PATH.lock; a kill leaves it, and every later append would wait for it). A dangling
    link (older versions linked a relative path, which resolves from the lock's folder) goes at once;
    one that still stands after `wait_s` (default `STALE_LOCK_S`) while the journal does not change goes
    then. True if removed."""
    lock = Path(f"{path}.lock")
    if not lock.is_symlink():
        return False
    if not lock.exists():
        lock.unlink(missing_ok=True)
        return True
    mtime = path.stat().st_mtime if path.exists() else None
    deadline = time.monotonic() + (STALE_LOCK_S if wait_s is None else wait_s)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if not lock.is_symlink() or (path.exists() and path.stat().st_mtime != mtime):
            return False  # released, or a live writer is appending
    lock.unlink(missing_ok=True)
    return True


def repair_journal(path: Path) -> int:
    """Cut a torn last record (a write cut short by a kill) off a journal file, so that the next
    record is not appended to it and the damage made permanent; returns the bytes removed."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.exists():
        return 0
    path = Path(os.path.abspath(path))
    lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's own appends take: no live write is cut
    if not lock.acquire():
        return 0
    try:
        with path.open("rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return 0
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            return len(data) - keep
    finally:
        lock.release()


def _check_journal(path: Path) -> None:
    """Every record of a journal file must be JSON: a damaged one fails now, in one line, not mid-search."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
            except ValueError:
                raise ValueError(f"record {number} is not valid JSON (the journal is damaged)") from None


def open_storage(url: str | StorageURL) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`. SQLite gets write-ahead logging with synchronous=NORMAL:
    a commit survives the process being killed, and trials are stored about twice as fast.
    A file that is not a storage (or a server that does not answer) is a StorageError."""
    where = url if isinstance(url, StorageURL) else StorageURL.parse(url)
    try:
        return _open(where)
    except ImportError:
        raise  # a missing database driver: the CLI says which to install
    except Exception as exc:
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:160]
        raise StorageError(
            f"storage={where.url!r} cannot be opened as an Optuna storage ({type(exc).__name__}: {cause}); "
            "give another storage, or move the damaged file away"
        ) from None


def _open(where: StorageURL) -> optuna.storages.BaseStorage:
    if where.kind == "sqlite":
        from sqlalchemy import event

        storage = optuna.storages.RDBStorage(where.url)
        engine = storage.engine

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        engine.dispose()
        return storage
    if where.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        assert where.path is not None
        path = Path(os.path.abspath(where.path))  # the lock links to its journal: a relative link would dangle
        clear_stale_lock(path)
        repair_journal(path)
        _check_journal(path)
        return JournalStorage(JournalFileBackend(str(path)))
    return optuna.storages.RDBStorage(where.url)


def claim_lock(url: str | StorageURL | None, study_name: str = "explore") -> AbstractContextManager[Any]:
    """The lock under which workers claim trials: a file beside an SQLite or journal storage (workers
    on one machine), a session advisory lock in a PostgreSQL or MySQL storage (workers anywhere),
    none for a storage in memory."""
    if url is None:
        return nullcontext()
    where = url if isinstance(url, StorageURL) else StorageURL.parse(url)
    if where.path is not None:
        return FileLock(where.path.with_name(where.path.name + ".claim-lock"))
    if where.dialect in ("postgresql", "mysql"):
        return DatabaseLock(where, f"explore-claim:{study_name}")
    return nullcontext()


class FileLock:
    """An exclusive `flock` on a file, held for the `with` block (re-entrant use is not needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    def __enter__(self) -> FileLock:
        import fcntl

        self.handle = self.path.open("a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


class DatabaseLock:
    """A named advisory lock of the storage's database server (pg_advisory_lock, MySQL GET_LOCK),
    held on one connection for the `with` block; it is released if the worker dies."""

    def __init__(self, where: StorageURL, name: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(where.url, pool_size=1, max_overflow=0)
        self.postgres = where.dialect == "postgresql"
        self.key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
        self.name = name[:64]
        self.connection: Any = None

    def __enter__(self) -> DatabaseLock:
        from sqlalchemy import text

        self.connection = self.engine.connect()
        if self.postgres:
            self.connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        else:
            self.connection.execute(text("SELECT GET_LOCK(:n, -1)"), {"n": self.name})
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import text

        try:
            if self.postgres:
                self.connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            else:
                self.connection.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self.name})
            self.connection.commit()
        finally:
            self.connection.close()
