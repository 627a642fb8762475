"""Durable storage of the GCS tables in SQLite or PostgreSQL, through SQLAlchemy."""

from __future__ import annotations

import pickle
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple, get_args

import structlog
from sqlalchemy import (
    Column,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

__all__ = [
    "QUERYABLE",
    "SCHEMA_VERSION",
    "TABLES",
    "GcsSchemaVersionError",
    "GcsStore",
    "GcsStoreUnavailable",
    "Record",
    "StoreRow",
    "TableName",
    "check_table",
    "encode_row",
    "redact_url",
    "store_url",
]

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
TableName = Literal["objects", "tasks", "functions", "actors", "nodes", "placement_groups"]
TABLES: tuple[TableName, ...] = get_args(TableName)
Record = dict[str, Any]
QUERYABLE = ("state", "name")  # record fields copied into indexed columns, for scan(where=...)

_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}
_IN_CHUNK = 1000  # keys per IN (...) query, under every backend's bound-parameter limit
_PG_CONNECT_TIMEOUT_S = 5
# URL schemes that name PostgreSQL without a driver, or by libpq's alias: babyray ships psycopg2
# (SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3).
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SQLITE_BUSY_TIMEOUT_MS = 30_000


class GcsStoreUnavailable(Exception):
    """The store could not be reached or failed to run a statement; retrying may succeed."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(url, cause)
        self.url = url
        """The store's URL, password redacted."""
        self.cause = cause
        """What the database driver reported, on one line."""

    def __str__(self) -> str:
        return f"GCS store {self.url} is unavailable: {self.cause}"


class GcsSchemaVersionError(Exception):
    """The store's tables were written by a babyray with another SCHEMA_VERSION."""


class StoreRow(NamedTuple):
    """One record encoded for writing, made by encode_row."""

    table: TableName
    key: str
    value: bytes
    """The pickled record."""
    state: str | None
    name: str | None
    updated_at: float


def redact_url(url: str) -> str:
    """Return url with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def store_url(url: str) -> URL:
    """Parse a GCS store URL; ``postgresql://`` and ``postgres://`` use the shipped psycopg2.

    Raises:
        ValueError: the URL cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"bad GCS store URL: {exc}") from None
    if parsed.drivername in _POSTGRES_SCHEMES:
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def check_table(table: str) -> None:
    """Raise ValueError unless table is one of TABLES."""
    if table not in TABLES:
        raise ValueError(f"unknown GCS table {table!r}; expected one of {', '.join(TABLES)}")


def encode_row(table: TableName, key: str, record: Record) -> StoreRow:
    """Pickle record now, so later changes to the dict are not stored.

    The record's ``state`` and ``name`` fields (str or None) go to indexed columns, and
    ``updated_at`` too (default: now).

    Raises:
        ValueError: table is not one of TABLES.
        TypeError: state or name is neither a str nor None.
    """
    check_table(table)
    for field in QUERYABLE:
        if not isinstance(record.get(field), (str, type(None))):
            got = type(record[field]).__name__
            raise TypeError(f"GCS record {table}/{key}: {field} must be a str or None, got {got}")
    value = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    return StoreRow(
        table,
        key,
        value,
        record.get("state"),
        record.get("name"),
        record.get("updated_at") or time.time(),
    )


class GcsStore:
    """The GCS tables in one SQL database, a pickled dict per key.

    Thread-safe: every call runs in its own transaction on a pooled connection. A SQLite store
    must be a file (``sqlite:///path``); it runs in WAL mode with a 30 s busy timeout.
    Connection and operational failures raise GcsStoreUnavailable.
    """

    def __init__(
        self, url: str, *, prefix: str = "babyray_", connect_timeout: float = _PG_CONNECT_TIMEOUT_S
    ) -> None:
        """Connect, create missing tables named ``<prefix><table>`` and check the schema version.

        ``connect_timeout``: seconds a PostgreSQL connection attempt may take.

        Raises:
            ValueError: the URL cannot be parsed, names a backend other than sqlite or
                postgresql, or a database driver that is not installed.
            GcsStoreUnavailable: the database cannot be reached (or refuses the connection).
            GcsSchemaVersionError: the tables hold another SCHEMA_VERSION.
        """
        parsed = store_url(url)
        self.url = redact_url(url)
        """The URL, password redacted: safe to log."""
        backend = parsed.get_backend_name()
        if backend not in _INSERTS:
            raise ValueError(
                f"unsupported GCS store backend {backend!r} in {self.url}; use sqlite or postgresql"
            )
        self._insert = _INSERTS[backend]
        self._metadata = MetaData()
        self._meta = Table(
            f"{prefix}meta",
            self._metadata,
            Column("key", String, primary_key=True),
            Column("value", String, nullable=False),
        )
        self._tables = {name: _record_table(self._metadata, f"{prefix}{name}") for name in TABLES}
        try:
            self._engine = _create_engine(parsed, connect_timeout)
        except (ImportError, NoSuchModuleError) as exc:
            raise ValueError(
                f"GCS store {self.url}: its database driver is not installed ({exc}); babyray ships "
                "psycopg2: use postgresql://, postgres:// or postgresql+psycopg2://"
            ) from None
        try:
            with self._guard(), self._engine.begin() as conn:
                self._metadata.create_all(conn)
                self._check_version(conn, prefix)
        except BaseException:
            self._engine.dispose()
            raise
        log.info("gcs_store_opened", url=self.url, prefix=prefix)

    def put_many(self, rows: Iterable[tuple[TableName, str, Record]]) -> None:
        """Upsert (table, key, record) rows in one transaction; for a repeated key the last wins."""
        self.write([encode_row(*row) for row in rows])

    def delete_many(self, rows: Iterable[tuple[TableName, str]]) -> None:
        """Delete (table, key) rows in one transaction; missing keys are ignored."""
        self.write(deletes=rows)

    def write(self, puts: Sequence[StoreRow] = (), deletes: Iterable[tuple[TableName, str]] = ()) -> None:
        """Upsert puts and delete deletes in one transaction; for a key put twice the last wins."""
        upserts: dict[TableName, dict[str, dict[str, Any]]] = defaultdict(dict)
        for row in puts:
            values = row._asdict()
            del values["table"]
            upserts[row.table][row.key] = values
        removals: dict[TableName, list[dict[str, str]]] = defaultdict(list)
        for table, key in deletes:
            removals[table].append({"doomed": key})
        if not upserts and not removals:
            return
        with self._guard(), self._engine.begin() as conn:
            for table, latest in upserts.items():
                t = self._table(table)
                stmt = self._insert(t)
                excluded = {
                    column: stmt.excluded[column] for column in ("value", "state", "name", "updated_at")
                }
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=[t.c.key], set_=excluded),
                    list(latest.values()),
                )
            for table, params in removals.items():
                t = self._table(table)
                conn.execute(t.delete().where(t.c.key == bindparam("doomed")), params)

    def get(self, table: TableName, key: str) -> Record | None:
        """Return the record stored under key, or None."""
        return self.get_many(table, [key]).get(key)

    def get_many(self, table: TableName, keys: Iterable[str]) -> dict[str, Record]:
        """Return {key: record} for those of keys that are stored."""
        t = self._table(table)
        keys = list(keys)
        found: dict[str, Record] = {}
        with self._guard(), self._engine.connect() as conn:
            for start in range(0, len(keys), _IN_CHUNK):
                rows = conn.execute(
                    select(t.c.key, t.c.value).where(t.c.key.in_(keys[start : start + _IN_CHUNK]))
                )
                found.update((key, pickle.loads(value)) for key, value in rows)
        return found

    def scan(
        self,
        table: TableName,
        where: Mapping[str, str | None] | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Return the records whose indexed columns equal where's values, oldest update first.

        Raises:
            ValueError: a where key is not in QUERYABLE.
        """
        return [record for _, record in self.scan_items(table, where, limit)]

    def scan_items(
        self,
        table: TableName,
        where: Mapping[str, str | None] | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, Record]]:
        """Like scan, but return (key, record) pairs."""
        t = self._table(table)
        query = select(t.c.key, t.c.value).order_by(t.c.updated_at, t.c.key).limit(limit)
        for column, value in (where or {}).items():
            if column not in QUERYABLE:
                known = ", ".join(QUERYABLE)
                raise ValueError(f"cannot scan GCS table {table} on {column!r}; known: {known}")
            query = query.where(t.c[column] == value)
        with self._guard(), self._engine.connect() as conn:
            return [(key, pickle.loads(value)) for key, value in conn.execute(query)]

    def close(self) -> None:
        """Close every pooled connection; the store can still be used, and reconnects."""
        self._engine.dispose()

    def drop_all(self) -> None:
        """Drop this store's tables, for tests."""
        with self._guard():
            self._metadata.drop_all(self._engine)

    def _table(self, name: TableName) -> Table:
        check_table(name)
        return self._tables[name]

    def _check_version(self, conn: Connection, prefix: str) -> None:
        conn.execute(
            self._insert(self._meta)
            .values(key="schema_version", value=str(SCHEMA_VERSION))
            .on_conflict_do_nothing()
        )
        found = conn.execute(
            select(self._meta.c.value).where(self._meta.c.key == "schema_version")
        ).scalar_one()
        if found != str(SCHEMA_VERSION):
            raise GcsSchemaVersionError(
                f"GCS store {self.url} (table prefix {prefix!r}) has schema version {found}, "
                f"this babyray needs {SCHEMA_VERSION}"
            )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            cause = exc.orig if exc.orig is not None else exc
            raise GcsStoreUnavailable(
                self.url, f"{type(cause).__name__}: {' '.join(str(cause).split())}"
            ) from exc


def _record_table(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("key", String, primary_key=True),
        Column("value", LargeBinary, nullable=False),
        Column("state", String, index=True),
        Column("name", String, index=True),
        Column("updated_at", Float, nullable=False, index=True),
    )


def _create_engine(url: URL, connect_timeout: float) -> Engine:
    """Make an engine that never puts statement parameters (pickled records) into error messages."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, hide_parameters=True)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(int(connect_timeout), 2)},  # libpq's least
    )


def _configure_sqlite(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
