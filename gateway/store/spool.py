"""A durable local spool: append-only JSON-lines segment files, fsync'd, replayed in order.

Two things go through it. Call records (and overrides and call updates) are appended and
fsync'd before the carrier is answered, so a call survives the process being killed right after
answering. And when the database stays down long enough for the in-memory queue to reach its
bound, the whole queue is spilled into a segment so memory stays bounded. A segment is deleted
only after a database transaction holding all of its records has committed; replaying one twice
is harmless because every insert is idempotent.

A record Postgres refuses for its data (found by the writer) is moved to `quarantine/`, a
subdirectory that is never replayed: one JSON line per record, a spool line plus the error, so
nothing is lost and `decode` reads it back for a replay once the cause is fixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.engine.records import (
    CallRecord,
    CandidateRecord,
    MatchOverride,
    SessionEvent,
    SessionStarted,
)
from gateway.store.records import CallUpdate

RECORD_TYPES: dict[str, type[Any]] = {
    "session": SessionStarted,
    "event": SessionEvent,
    "call": CallRecord,
    "override": MatchOverride,
    "call_update": CallUpdate,
}
TYPE_NAMES = {cls: name for name, cls in RECORD_TYPES.items()}
SEGMENT_SUFFIX = ".jsonl"
QUARANTINE_DIR = "quarantine"  # under the spool directory; `segments()` never lists it


class SpoolError(Exception):
    """The spool could not be written (disk full, unwritable directory)."""


FIELD_NAMES = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in RECORD_TYPES.values()}


# `json.dumps(..., separators=...)` builds a new encoder on every call; one does for all.
_json = json.JSONEncoder(separators=(",", ":")).encode


def _document(record: Any) -> dict[str, Any]:
    doc = {name: getattr(record, name) for name in FIELD_NAMES[type(record)]}
    if type(record) is CallRecord:
        doc["candidates"] = [(c.session, c.visitor, c.likelihood) for c in record.candidates]
    return {"t": TYPE_NAMES[type(record)], "r": doc}


def encode(record: Any) -> str:
    """One JSON line (NUL escaped; text that is not valid UTF-8 escaped too, so any text fits).

    orjson writes it: a call record with its 20 candidates, written once per call before the
    answer, took 30 us with the standard library's encoder and takes 1 us. What orjson
    refuses (a lone surrogate, an integer past 64 bits) falls back to the standard library's
    ASCII-escaped form; `decode` reads both back the same. orjson writes NaN and infinities as
    null: records carry none (times are validated finite, likelihoods are in [0, 1])."""
    return _line(record)[:-1].decode()


def _line(record: Any) -> bytes:
    """`encode` as bytes, with the line end."""
    doc = _document(record)
    try:
        return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError
        return (_json(doc) + "\n").encode()


def decode(line: str) -> Any:
    doc = json.loads(line)
    cls = RECORD_TYPES[doc["t"]]
    fields = doc["r"]
    if cls is CallUpdate:  # written before the carrier field existed: absent means None
        fields.setdefault("carrier", None)
    if cls is CallRecord:
        fields["candidates"] = tuple(CandidateRecord(*c) for c in fields["candidates"])
    if cls is SessionStarted:
        fields["attribution"] = tuple(tuple(p) for p in fields["attribution"])
    return cls(**fields)


class Spool:
    """Segments `NNNNNNNNNN.jsonl` in `directory`; the newest open one takes appends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: Any = None
        self._current: Path | None = None
        self._next = 0

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.directory}: {exc}") from exc
        existing = self.segments()
        self._next = (int(existing[-1].stem) + 1) if existing else 0

    def segments(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.suffix == SEGMENT_SUFFIX
                      and p.stem.isdigit())

    def _new_segment(self) -> Path:
        path = self.directory / f"{self._next:010d}{SEGMENT_SUFFIX}"
        self._next += 1
        return path

    def write(self, records: list[Any]) -> None:
        """Append to the open segment (in the OS cache, not yet durable: see `sync`)."""
        if not records:
            return
        data = b"".join(map(_line, records))
        try:
            if self._file is None:
                self._current = self._new_segment()
                self._file = open(self._current, "ab")  # noqa: SIM115 - kept open across calls
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self._close_quietly()
            raise SpoolError(f"spool write failed: {exc}") from exc

    def sync(self) -> None:
        """fsync the open segment: everything written so far survives a crash."""
        f = self._file
        if f is None:
            return
        try:
            os.fsync(f.fileno())
        except ValueError:
            return  # closed meanwhile by `rotate`, which fsyncs before it closes
        except OSError as exc:
            raise SpoolError(f"spool fsync failed: {exc}") from exc

    def append(self, records: list[Any]) -> None:
        """Write and fsync in one go (used where blocking is fine: tests, shutdown)."""
        self.write(records)
        self.sync()

    def write_segment(self, records: list[Any]) -> Path:
        """Spill a whole batch into a new closed segment (bounded memory when the db is down)."""
        self.rotate()
        path = self._new_segment()
        try:
            with open(path, "wb") as f:
                f.write(b"".join(map(_line, records)))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise SpoolError(f"spool spill failed: {exc}") from exc
        return path

    def rotate(self) -> list[Path]:
        """Close the open segment (fsync'd first); return every closed segment, oldest first."""
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):
                os.fsync(self._file.fileno())
        self._close_quietly()
        return self.segments()

    def read(self, path: Path) -> Iterator[Any]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):  # a torn last line was never acknowledged: skip it
                    yield decode(line)

    def quarantine(self, refused: list[tuple[Any, str]]) -> Path:
        """Append records with the reason each was refused to today's (UTC) quarantine file,
        fsync'd before returning: the caller then lets the spool forget them."""
        directory = self.directory / QUARANTINE_DIR
        path = directory / time.strftime(f"%Y-%m-%d{SEGMENT_SUFFIX}", time.gmtime())
        now = time.time()
        lines = "".join(_json({**_document(record), "error": reason, "quarantined_at": now})
                        + "\n" for record, reason in refused)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _append_locked(path, lines.encode())
        except OSError as exc:
            raise SpoolError(f"quarantine write failed: {exc}") from exc
        return path

    def remove(self, paths: list[Path]) -> None:
        for p in paths:
            p.unlink(missing_ok=True)

    def _close_quietly(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            self._current = None

    def close(self) -> None:
        self._close_quietly()


def _append_locked(path: Path, data: bytes) -> None:
    """Append and fsync under the file's lock (`purge_quarantine` rewrites files under it):
    if a purge replaced or removed the file while this waited, append to the new one."""
    for _ in range(10):
        with open(path, "ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when `f` closes
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                continue
            if current != os.fstat(f.fileno()).st_ino:
                continue
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            return
    raise OSError(f"{path} kept changing under its lock")


def purge_quarantine(spool_root: Path, *, before: float | None = None,
                     caller: str | None = None, call_ids: Iterable[str] = ()) -> int:
    """Delete quarantined records as `dni-gateway purge` deletes rows: those dated before
    `before` (epoch seconds; the record's own time), or every call of `caller` (E.164); and,
    with either, the status updates and overrides of those calls and of `call_ids` (the calls
    the database purge deleted). Covers every worker slot's spool under `spool_root`; returns
    how many records went.

    A day's file (`YYYY-MM-DD.jsonl`, the UTC day its records were quarantined) wholly before
    `before` is deleted whole. Any other file is rewritten (a temporary file, fsync'd, renamed
    over it, or removed once empty) while holding its lock, which `Spool.quarantine` takes too:
    a record a running gateway quarantines meanwhile is never lost. Quarantine files are small
    (records Postgres refused), so they are read whole."""
    files = sorted(spool_root.glob(f"**/{QUARANTINE_DIR}/*{SEGMENT_SUFFIX}"))
    calls: set[Any] = set(call_ids)
    if caller is not None:  # the caller's own calls in quarantine, whichever file holds them
        for path in files:
            for doc in map(_parsed, _lines(path.read_bytes())):
                r = doc.get("r", {}) if doc is not None else {}
                if doc is not None and doc.get("t") == "call" and r.get("caller") == caller:
                    calls.add(r.get("call_id"))
    removed = 0
    for path in files:
        removed += _purge_file(path, before, caller, calls)
    return removed


def _purge_file(path: Path, before: float | None, caller: str | None, calls: set[Any]) -> int:
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when `held` closes
        lines = _lines(held.read())
        if before is not None and _day_end(path) <= before:
            path.unlink()
            return len(lines)
        kept = [line for line in lines if not _goes(line, _parsed(line), before, caller, calls)]
        if len(kept) == len(lines):
            return 0
        if not kept:
            path.unlink()
        else:
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".purging-")
            try:
                with os.fdopen(handle, "wb") as f:
                    f.write(b"".join(line + b"\n" for line in kept))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temporary, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        _fsync_directory(path.parent)
        return len(lines) - len(kept)


def _goes(line: bytes, doc: dict[str, Any] | None, before: float | None, caller: str | None,
          calls: set[Any]) -> bool:
    if doc is None:  # not JSON (a torn write, bytes that are not UTF-8): judged by its text
        return caller is not None and caller.encode() in line
    kind, r = doc.get("t"), doc.get("r", {})
    if kind != "session" and r.get("call_id") in calls:
        return True
    if caller is not None:
        return bool(r.get("caller") == caller)
    at = r.get("at", doc.get("quarantined_at"))
    return before is not None and isinstance(at, int | float) and at < before


def _day_end(path: Path) -> float:
    """When the UTC day a quarantine file is named after ends (inf for another name)."""
    try:
        day = datetime.strptime(path.name.removesuffix(SEGMENT_SUFFIX), "%Y-%m-%d")
    except ValueError:
        return math.inf
    return day.replace(tzinfo=UTC).timestamp() + 86_400.0


def _lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line]


def _parsed(line: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("r", {}), dict):
        return None
    return doc


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
