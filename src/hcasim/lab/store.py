"""Non-volatile lab state in SQLite: the lab's definition and each device's flash.

One transaction per firmware write, WAL journal, synchronous=FULL: a kill -9 of the daemon
at any moment leaves every flash holding either the image before or the image after a
write, never a mix. Volatile state (locks, sessions, LIDs) is never written here.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flash (
    device TEXT PRIMARY KEY,
    image BLOB NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS nv_object (
    device TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (device, name)
);
"""


class StoreError(Exception):
    """The store is unreadable or belongs to another schema."""


class LabStore:
    """The lab home's SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:  # a directory, or a file the daemon may not open, in the store's place
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{path}: {exc}") from None
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def get_meta(self, key: str) -> Any:
        """Return a JSON value stored under ``key``, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` durably."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def create_lab(self, definition: dict[str, Any], flashes: dict[str, bytes]) -> None:
        """Record a new lab and every device's factory flash in one transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('lab', ?)", (json.dumps(definition),)
            )
            self._db.executemany(
                "INSERT INTO flash (device, image) VALUES (?, ?)", list(flashes.items())
            )

    def lab_definition(self) -> dict[str, Any] | None:
        """Return the lab definition recorded by :meth:`create_lab`, if any."""
        value = self.get_meta("lab")
        return value if isinstance(value, dict) else None

    def flash_image(self, device: str) -> bytes:
        """Return a device's flash contents."""
        row = self._db.execute("SELECT image FROM flash WHERE device = ?", (device,)).fetchone()
        if row is None:
            raise StoreError(f"no flash recorded for device {device}")
        return bytes(row[0])

    def flash_images(self) -> dict[str, bytes]:
        """Every device's flash contents, by device (one query, for a lab's start)."""
        rows = self._db.execute("SELECT device, image FROM flash").fetchall()
        return {device: bytes(image) for device, image in rows}

    def all_nv_objects(self) -> dict[str, dict[str, Any]]:
        """Every device's other non-volatile objects, by device and name (one query)."""
        result: dict[str, dict[str, Any]] = {}
        for device, name, value in self._db.execute(
            "SELECT device, name, value FROM nv_object"
        ).fetchall():
            result.setdefault(device, {})[name] = json.loads(value)
        return result

    def write_flash(self, device: str, image: bytes) -> None:
        """Replace a device's flash contents in one durable transaction."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE flash SET image = ?, generation = generation + 1 WHERE device = ?",
                (image, device),
            )
            if cur.rowcount != 1:
                raise StoreError(f"no flash recorded for device {device}")

    def nv_objects(self, device: str) -> dict[str, Any]:
        """Return a device's other non-volatile objects by name."""
        rows = self._db.execute(
            "SELECT name, value FROM nv_object WHERE device = ?", (device,)
        ).fetchall()
        return {name: json.loads(value) for name, value in rows}

    def write_nv_object(self, device: str, name: str, value: Any) -> None:
        """Replace one non-volatile object of a device in one durable transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO nv_object (device, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(device, name) DO UPDATE SET value = excluded.value",
                (device, name, json.dumps(value)),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
