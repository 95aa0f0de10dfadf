"""SQL for the hot path every tool call takes: a lookup the ORM compiles once, and a cursor without Django's
per-statement rewriting.

`QuerySet.get()` compiles its SQL every time it runs: for a select_related lookup on a hot path (the
gateway reads the tool and its server before every call) that compilation costs several times the query
itself. `PreparedLookup` lets the ORM compile the query once per database connection, keeps the
compiler, and then only executes the SQL with the new value and builds the instances the way
`ModelIterable` does (the field converters, also worked out once; `from_db`; select_related
populators). Every call still reads the database: nothing is cached but the SQL.

`hot_cursor()`: on SQLite Django's cursor rewrites every statement's %s placeholders to ? with a regex,
which for a long SELECT costs as much as running it; for SQL that never changes once is enough.
"""

from __future__ import annotations

import functools
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

_PLACEHOLDER = "\x00prepared-lookup-value\x00"


@functools.lru_cache(maxsize=64)
def _qmark(sql: str) -> str:
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


class _QmarkCursor(sqlite3.Cursor):
    """A sqlite3 cursor given SQL with Django's %s placeholders, each statement's ? form worked out once."""

    def execute(self, sql: str, params: Any = None) -> sqlite3.Cursor:  # type: ignore[override]
        return super().execute(sql) if params is None else super().execute(_qmark(sql), params)


@contextmanager
def hot_cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """A cursor for constant SQL on a hot path: on SQLite the sqlite3 cursor itself (its errors turned into
    Django's) with the placeholders rewritten once per statement rather than on every execution; Django's own
    cursor on other databases, and whenever something sees each query (DEBUG, a test capturing them, an execute
    wrapper)."""
    if connection.vendor != "sqlite" or connection.queries_logged or connection.execute_wrappers:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    connection.validate_no_broken_transaction()  # as Django's cursor does before every statement
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor(factory=_QmarkCursor)
        try:
            yield cursor
        finally:
            cursor.close()


class _Compiled:
    def __init__(self, queryset: QuerySet, using: str) -> None:
        compiler = queryset.query.get_compiler(using=using)
        self.sql, params = compiler.as_sql()  # also fills compiler.select and klass_info
        if list(params) != [_PLACEHOLDER]:
            raise ValueError("a prepared lookup takes exactly one value")
        self.compiler = compiler
        self.model = compiler.klass_info["model"]
        fields = compiler.klass_info["select_fields"]
        self.own = slice(fields[0], fields[-1] + 1)
        self.attnames = [column[0].target.attname for column in compiler.select[self.own]]
        self.related = get_related_populators(compiler.klass_info, compiler.select, using)
        self.converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])


class PreparedLookup:
    """`lookup(value)`: the one instance `build(value)` selects, or None; the SQL compiled once.

    `build` gets the value to filter by and returns the queryset (a placeholder is passed once, to
    compile it). The queryset must select at most one row (filter on a unique column) and take no
    other parameter."""

    def __init__(self, build: Callable[[Any], QuerySet], using: str = DEFAULT_DB_ALIAS) -> None:
        self.build = build
        self.using = using
        self._compiled: weakref.WeakKeyDictionary[Any, _Compiled] = weakref.WeakKeyDictionary()

    def __call__(self, value: Any) -> Model | None:
        connection = connections[self.using]  # one per thread: so is each compiled copy
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compiled[connection] = _Compiled(self.build(_PLACEHOLDER), self.using)
        with hot_cursor(connection) as cursor:
            cursor.execute(compiled.sql, [value])
            rows = cursor.fetchmany(2)
        if not rows:
            return None
        if len(rows) > 1:
            raise compiled.model.MultipleObjectsReturned(f"more than one {compiled.model.__name__} for {value!r}")
        (row,) = compiled.compiler.apply_converters(rows, compiled.converters) if compiled.converters else rows
        instance = compiled.model.from_db(self.using, compiled.attnames, row[compiled.own])
        for populator in compiled.related:
            populator.populate(row, instance)
        return instance
