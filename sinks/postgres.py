"""The snapshot writer: a batch of snapshots into PostgreSQL, in one transaction, idempotently.

A batch mixes learner snapshots (``Snapshot``), catalog snapshots (``CatalogSnapshot``),
course snapshots (``CourseSnapshot``: the course catalog, ``sinks/course_catalog.py``) and
erasures (``Erasure``: delete every row of a learner). Every batch's course_progress rows
are also kept by day (``sinks/history.py``).

Contract: a row is written only if it is newer than the stored one (a higher ``version`` for
per-learner rows, a later ``updated_at`` for catalog rows); an older or equal row is a no-op.
So redelivery, replay and two sinks overlapping during a rebalance all converge on the
newest rows, and the order in which batches arrive does not matter. A row's bulky content
fields (``Row.unchanged``) offered as None mean "unchanged": the newer row is written with
the stored value of each (``_kept_or_stored``; see docs/events.md, Snapshot).

A snapshot carries only the rows that changed; a row it leaves out stays as stored. Sets that
lose rows: a course's modules (modules no longer in the course are deleted) and a learner's
paths, competencies and evidence. A snapshot that carries such a set whole says so, with its
version (``Snapshot.whole_modules``, ``whole_learner_wide``); the set's rows older than that
are deleted, in the same transaction, and for good: a replayed older snapshot cannot bring
them back (``_not_removed``).

Catalog deletions are soft: a deleted catalog snapshot sets ``deleted`` and moves
``updated_at`` to the deletion's, keeping the entry's last definition. The row stays as a
tombstone, so an older definition arriving later loses to it like any older row and cannot
bring the entry back; a newer definition does (the entry is defined again). Listings leave
deleted entries out; achievements already earned keep their name and points.

Erasures: a learner's messages all travel on one partition (keyed by user_id), and the batch
lists each partition's messages in offset order, so a learner's erasure stands between the
snapshots the learner had before it and those of the learner coming back afterwards (their
versions restart at 1). ``after_erasures`` keeps only the snapshots after each learner's last
erasure in the batch: the earlier ones describe rows the erasure removes. The transaction then
deletes every row of the batch's erased learners from each per-learner table first (one
``user_id = any(%s)`` statement per table) and upserts the kept snapshots after that, so the
version guard compares a re-created learner's rows with nothing and they are written, whatever
version the erased rows had. A batch read again (its offsets were not committed) holds the
same erasure after the same snapshots and ends in the same rows. Only a re-read that the
consumer cuts at another point can split them: a batch of old snapshots alone writes the
erased rows again, and the next batch, which starts with the erasure, deletes them again (see
docs/reliability.md#erasure).

Content restores (``ContentRestore``, from ``progress resnapshot``): after the batch's rows,
each writes one piece of bulky content into its row where the row is still the one it
belongs to (``sinks/content.py``).

Batching: per table, the batch's rows are COPYed into a temporary table of the same shape
and merged by one ``INSERT ... SELECT ... ON CONFLICT`` carrying the version guard. COPY
streams the rows with no per-row statement, bind or answer (psycopg adapts each value as a
parameter would: ``text[]``, NULL timestamps), and the merge is one set-based statement;
``executemany`` in pipeline mode, the previous way, still bound every row on its own: run
back to back, it wrote 27,268 rows/s against COPY's 33,765 (BENCHMARKS.md, sink). The COPY
is binary, with each column's type looked up once per connection (``_stage_tables``): text
COPY formatted every value in the sink and parsed it again in PostgreSQL. Binary COPY packs
an int into its column's width unchecked (3,000,000,000 would arrive in an ``integer``
column as -1,294,967,296), so the staging tables take ``integer`` columns as ``bigint`` and
the merge's cast into the real column checks the range: a value that does not fit fails the
transaction (``NumericValueOutOfRange``, as one past a ``bigint`` fails in psycopg with
``OverflowError``), and is never stored wrapped. The runner tells such a failure, which
recurs for the batch, from a transient one (``sinks/runner.py``).

The tables go one after the other: a table's COPY, then its merge, sent in a pipeline that
returns at once, so PostgreSQL merges one table while the sink formats the next table's rows
(``_copy_data``, into memory); the pipeline's end waits for the merge, and the next COPY
sends what was formatted. Staging everything first left PostgreSQL idle while the sink
formatted every table and the sink idle during every merge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from types import MappingProxyType
from typing import Any, TypeAlias, cast
from weakref import WeakKeyDictionary

from psycopg import AsyncConnection, AsyncCopy, AsyncCursor, sql
from psycopg.abc import Buffer
from psycopg.copy import AsyncWriter

from adapters.schema import table_columns
from progress.catalog import CatalogSnapshot, LearningPathRow
from progress.content import ContentRestore
from progress.course_catalog import CourseSnapshot
from progress.models import (
    ALL_ROW_MODELS,
    Achievement,
    AssignmentSubmission,
    Competency,
    CompetencyEvidence,
    CourseProgress,
    LearningPathProgress,
    LessonProgress,
    ModuleProgress,
    QuizAttempt,
    QuizQuestionResponse,
    Row,
    UserAchievement,
    UserCompetency,
    UserProgress,
    VersionedRow,
)
from progress.snapshots import Erasure, Snapshot, newest_row
from sinks import content
from sinks.course_catalog import write_courses
from sinks.errors import InvalidSnapshot
from sinks.history import ERASE as ERASE_HISTORY
from sinks.history import write_history

SinkMessage: TypeAlias = Snapshot | CatalogSnapshot | CourseSnapshot | Erasure | ContentRestore
CatalogRow: TypeAlias = Competency | Achievement | LearningPathRow


# The catalog tables, in the order a batch writes them.
CATALOG_MODELS: tuple[type[CatalogRow], ...] = (Competency, Achievement, LearningPathRow)


def _assignments(columns: Iterable[str]) -> list[sql.Composable]:
    return [
        sql.SQL("{col} = excluded.{col}").format(col=sql.Identifier(column)) for column in columns
    ]


def _insert(
    table: str,
    columns: Sequence[str],
    *,
    deleted: bool | None = None,
    values: Sequence[sql.Composable] | None = None,
) -> sql.Composed:
    """``insert into table (columns) values (%s, ...)``, or the ``values`` given; with
    ``deleted`` (catalog tables), that column too, as a constant."""
    names: list[sql.Composable] = [sql.Identifier(column) for column in columns]
    values = list(values) if values is not None else [sql.Placeholder()] * len(columns)
    if deleted is not None:
        names.append(sql.Identifier("deleted"))
        values.append(sql.Literal(deleted))
    return sql.SQL("insert into {table} ({columns}) values ({values})").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(names),
        values=sql.SQL(", ").join(values),
    )


def _on_conflict(model: type[Row], columns: Sequence[str]) -> sql.Composed:
    """The upsert's tail: a stored row is replaced only by a newer one. Per-learner rows
    order by the learner's version; catalog rows by their updated_at."""
    guard = sql.Identifier("version" if issubclass(model, VersionedRow) else "updated_at")
    updates = _assignments(column for column in columns if column != "id")
    updates.append(sql.SQL("synced_at = now()"))
    return sql.SQL(
        " on conflict (id) do update set {updates} where {table}.{guard} < excluded.{guard}"
    ).format(updates=sql.SQL(", ").join(updates), table=sql.Identifier(model.table), guard=guard)


# The value an ``unchanged`` column of a row not stored yet takes when the row leaves it None
# (its content was never offered, e.g. its snapshot was dead-lettered): the columns are not
# null, and the sink must go on.
_EMPTY: Mapping[str, sql.Composable] = MappingProxyType(
    {"selected_options": sql.SQL("'{}'::text[]")}
)


def _kept_or_stored(
    model: type[Row], column: str, value: sql.Composable, row_id: sql.Composable
) -> sql.Composable:
    """A column's value in an upsert. For an ``unchanged`` column (``Row.unchanged``) left
    None: the stored row's value, which the update then writes back, so None keeps it.

    The stored value is read in the statement's snapshot, before the row is locked. That is
    the value at the update too: a row is only written concurrently by two sinks during a
    rebalance, and both then hold the snapshots since the last committed offset, which
    carry any content stored since."""
    if column not in model.unchanged:
        return value
    return sql.SQL(
        "coalesce({value}, (select x.{column} from {table} x where x.id = {row_id}), {empty})"
    ).format(
        value=value,
        column=sql.Identifier(column),
        table=sql.Identifier(model.table),
        row_id=row_id,
        empty=_EMPTY.get(column, sql.Literal("")),
    )


@dataclass(frozen=True, slots=True)
class Upsert:
    # The row's attributes that the statement's parameters take, in order.
    params: tuple[str, ...]
    statement: sql.Composed


def _row_upsert(model: type[Row]) -> Upsert:
    columns = table_columns(model)
    params: list[str] = []
    values: list[sql.Composable] = []
    for column in columns:
        values.append(_kept_or_stored(model, column, sql.Placeholder(), sql.Placeholder()))
        params += [column, "id"] if column in model.unchanged else [column]
    statement = _insert(model.table, columns, values=values) + _on_conflict(model, columns)
    return Upsert(params=tuple(params), statement=statement)


# One row per statement, with the batch's guard: not how the sink writes (see _Staged), but
# the baseline bench/sink_rows.py measures the batching against.
ROW_UPSERTS: Mapping[type[Row], Upsert] = MappingProxyType(
    {model: _row_upsert(model) for model in ALL_ROW_MODELS}
)


@dataclass(frozen=True, slots=True)
class _Staged:
    """A batch's rows of one table: COPYed into a temporary table, then merged into the
    real one by a single ``INSERT ... SELECT ... ON CONFLICT`` with the same guard."""

    columns: tuple[str, ...]
    # A row's values in ``columns`` order, as one C-level call per row on the row's
    # ``vars``: a pydantic model keeps its fields there, and reading them from it costs
    # about half of reading them as attributes, which go through the model's __getattr__
    # hook one by one (measured: 1.9 against 0.7-1.0 µs for an 18-column row).
    values: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    stage: sql.Identifier
    copy: sql.Composed
    merge: sql.Composed


# The sets whose rows a snapshot may leave out (partial snapshots), each table with the parent
# row that would be newer than a row of it that was removed: a course's modules, a learner's
# paths, competencies and evidence. Each is written before its parent (``_MERGE_ORDER``), so
# that the guard (``_not_removed``) sees the parent as it was before the batch.
_PARENTS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "module_progress": ("course_progress", ("user_id", "course_id")),
        "learning_path_progress": ("user_progress", ("user_id",)),
        "user_competencies": ("user_progress", ("user_id",)),
        "competency_evidence": ("user_progress", ("user_id",)),
    }
)


def _not_removed(model: type[Row]) -> sql.Composable:
    """The staged rows of a set that may be written: a row stored already, or one whose
    parent row is not stored at a newer version. A set's row absent under a newer parent was
    removed (a whole set at a newer version left it out, ``_RETIRE_MODULES``): the sink writes a
    learner's snapshots in order from its committed offset, so every snapshot up to the
    parent's version was written, and the row's with them. So an older snapshot written
    again (a re-read, two sinks overlapping in a rebalance) cannot bring a removed row back.
    """
    if model.table not in _PARENTS:
        return sql.SQL("")
    parent, keys = _PARENTS[model.table]
    same = sql.SQL(" and ").join(
        sql.SQL("p.{key} = s.{key}").format(key=sql.Identifier(key)) for key in keys
    )
    return sql.SQL(
        " where exists (select 1 from {table} x where x.id = s.id)"
        " or not exists (select 1 from {parent} p where {same} and p.version > s.version)"
    ).format(table=sql.Identifier(model.table), parent=sql.Identifier(parent), same=same)


def _build_staged(model: type[Row]) -> _Staged:
    columns = table_columns(model)
    table = sql.Identifier(model.table)
    stage = sql.Identifier(f"stage_{model.table}")
    names = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    selected = sql.SQL(", ").join(
        _kept_or_stored(model, column, sql.Identifier("s", column), sql.Identifier("s", "id"))
        for column in columns
    )
    return _Staged(
        columns=columns,
        values=itemgetter(*columns),
        stage=stage,
        # Binary: psycopg's C dumpers send ints, floats and timestamps as they are; text COPY
        # spent about half the sink's COPY CPU formatting them (measured back to back).
        copy=sql.SQL("copy {stage} ({names}) from stdin (format binary)").format(
            stage=stage, names=names
        ),
        # Ordered by id: the lock order that keeps two overlapping sinks from deadlocking.
        merge=sql.SQL(
            "insert into {table} ({names}) select {selected} from {stage} s{guard} order by s.id"
        ).format(
            table=table, names=names, selected=selected, stage=stage, guard=_not_removed(model)
        )
        + _on_conflict(model, columns),
    )


_STAGED: Mapping[type[Row], _Staged] = MappingProxyType(
    {model: _build_staged(model) for model in ALL_ROW_MODELS}
)

_COLUMN_TYPES = sql.SQL(
    "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
    " from pg_attribute a join pg_class c on c.oid = a.attrelid"
    " where a.attrelid = any(%s::regclass[]) and a.attnum > 0 and not a.attisdropped"
)
# A staging column's type, where it differs from the real column's: wide enough that the
# merge, not binary COPY, checks the value's range (module docstring).
_STAGE_TYPE = {"integer": "bigint"}


@dataclass(frozen=True, slots=True)
class _StageTables:
    """The staging tables of one connection: each table's column types in
    ``_Staged.columns`` order, as binary COPY needs them, and the statement creating it."""

    types: Mapping[type[Row], list[str]]
    create: Mapping[type[Row], sql.Composed]


# Per connection, looked up once: the schema is the migrations', which every process applies
# before it writes, so it does not change under an open connection.
_TYPES_BY_CONNECTION: WeakKeyDictionary[AsyncConnection, _StageTables] = WeakKeyDictionary()


async def _stage_tables(cursor: AsyncCursor[Any]) -> _StageTables:
    known = _TYPES_BY_CONNECTION.get(cursor.connection)
    if known is not None:
        return known
    await cursor.execute(_COLUMN_TYPES, ([model.table for model in ALL_ROW_MODELS],))
    found: dict[tuple[str, str], str] = {
        (table, column): _STAGE_TYPE.get(type_name, type_name)
        for table, column, type_name in await cursor.fetchall()
    }
    types = {
        model: [found[model.table, column] for column in _STAGED[model].columns]
        for model in ALL_ROW_MODELS
    }
    # Per session (a pooled connection keeps them); emptied at every commit. Only the
    # model's columns: the merge names them, and the real table applies its defaults.
    create = {
        model: sql.SQL(
            "create temporary table if not exists {stage} ({columns}) on commit delete rows"
        ).format(
            stage=_STAGED[model].stage,
            columns=sql.SQL(", ").join(
                # Type names as PostgreSQL's own format_type spells them.
                sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(type_name))
                for column, type_name in zip(_STAGED[model].columns, types[model], strict=True)
            ),
        )
        for model in ALL_ROW_MODELS
    }
    known = _StageTables(types=types, create=create)
    _TYPES_BY_CONNECTION[cursor.connection] = known
    return known


# The per-learner tables (every one has user_id, indexed first), in the order a batch writes
# them; an erasure deletes from each.
LEARNER_MODELS: tuple[type[VersionedRow], ...] = tuple(
    model for model in ALL_ROW_MODELS if issubclass(model, VersionedRow)
)
_ERASE: Mapping[type[VersionedRow], sql.Composed] = MappingProxyType(
    {
        model: sql.SQL("delete from {table} where user_id = any(%s)").format(
            table=sql.Identifier(model.table)
        )
        for model in LEARNER_MODELS
    }
)


@dataclass(frozen=True, slots=True)
class _CatalogWrites:
    columns: tuple[str, ...]
    define: sql.Composed
    delete: sql.Composed
    # Parameters: created_at, id, created_at. None for a table without created_at.
    backdate: sql.Composed | None


def _build_catalog_writes(model: type[CatalogRow]) -> _CatalogWrites:
    """The writes of a catalog table: a definition, a deletion (a tombstone), a backdate.

    A definition wins over a stored row with an older ``updated_at``, deleted or not. A
    deletion wins over a row with an older or equal one (on a tie the deletion wins, in
    whichever order the two arrive) and changes only ``deleted`` and ``updated_at``: the
    entry's last definition stays, for the achievements already earned. ``created_at`` is
    the earliest any definition carried, whatever the order they arrive in (the worker
    stamps each version with that version's time): the backdate, after each definition.
    """
    columns = table_columns(model)
    table = sql.Identifier(model.table)
    updates = _assignments(column for column in columns if column not in ("id", "created_at"))
    define = sql.SQL(
        "{insert} on conflict (id) do update set {updates}, deleted = false, synced_at = now()"
        " where {table}.updated_at < excluded.updated_at"
    ).format(
        insert=_insert(model.table, columns, deleted=False),
        updates=sql.SQL(", ").join(updates),
        table=table,
    )
    delete = sql.SQL(
        "{insert} on conflict (id) do update"
        " set updated_at = excluded.updated_at, deleted = true, synced_at = now()"
        " where {table}.updated_at < excluded.updated_at"
        " or ({table}.updated_at = excluded.updated_at and not {table}.deleted)"
    ).format(insert=_insert(model.table, columns, deleted=True), table=table)
    backdate = None
    if "created_at" in columns:
        backdate = sql.SQL(
            "update {table} set created_at = %s where id = %s and created_at > %s"
        ).format(table=table)
    return _CatalogWrites(columns=columns, define=define, delete=delete, backdate=backdate)


_CATALOG_WRITES: Mapping[type[CatalogRow], _CatalogWrites] = MappingProxyType(
    {model: _build_catalog_writes(model) for model in CATALOG_MODELS}
)


def catalog_row(snapshot: CatalogSnapshot) -> CatalogRow:
    """The one row a catalog snapshot carries; ``InvalidSnapshot`` if it carries none or
    several."""
    rows = [
        row
        for row in (snapshot.competency, snapshot.achievement, snapshot.learning_path)
        if row is not None
    ]
    if len(rows) != 1:
        raise InvalidSnapshot(f"a catalog snapshot carries exactly one row, this one {len(rows)}")
    return rows[0]


def coalesce(snapshots: Iterable[Snapshot]) -> dict[type[Row], list[VersionedRow]]:
    """The newest row per (table, id) across the snapshots, grouped by model (``gather``)."""
    return gather(snapshots).grouped


@dataclass(frozen=True, slots=True)
class Gathered:
    """What one pass over a batch's learner snapshots finds (``gather``)."""

    # The newest row per (table, id), grouped by model; only models with rows.
    grouped: dict[type[Row], list[VersionedRow]]
    # The highest version offered per learner: what the cache must advance to.
    versions: dict[str, int]
    # The courses any row belongs to: whose course views are stale.
    courses: set[str]


# A learner snapshot's row groups after user_progress, each with its model and whether its
# rows belong to a course (carry ``course_id``); evidence travels inside its competency.
_GROUPS: tuple[tuple[str, type[VersionedRow], bool], ...] = (
    ("course_progress", CourseProgress, True),
    ("module_progress", ModuleProgress, True),
    ("lesson_progress", LessonProgress, True),
    ("quiz_attempts", QuizAttempt, True),
    ("quiz_question_responses", QuizQuestionResponse, False),
    ("assignment_submissions", AssignmentSubmission, True),
    ("learning_path_progress", LearningPathProgress, False),
    ("user_competencies", UserCompetency, False),
    ("user_achievements", UserAchievement, False),
)


_GATHERED: tuple[type[VersionedRow], ...] = (
    UserProgress,
    *(model for _, model, _ in _GROUPS),
    CompetencyEvidence,
)


def gather(snapshots: Iterable[Snapshot]) -> Gathered:
    """The batch's rows to write, its learners' versions and the courses it touches, in one
    pass over every row (the sink's per-row CPU: three passes cost about twice as much).

    Rows are kept by ``progress.snapshots.newest_row``, the rule of the learner merge too: the
    first of equal versions, as PostgreSQL keeps the stored row on a tie, with the
    ``unchanged`` fields it leaves None taken from the other, as the upsert keeps a stored
    value (``_kept_or_stored``). The versions are the highest any row of the learner has,
    whether or not its row is the one kept: the same as the highest of the kept rows.
    """
    newest: dict[type[Row], dict[str, VersionedRow]] = {model: {} for model in _GATHERED}
    versions: dict[str, int] = {}
    courses: set[str] = set()
    users = newest[UserProgress]
    evidence = newest[CompetencyEvidence]

    def keep(by_id: dict[str, VersionedRow], row: VersionedRow) -> None:
        kept = by_id.get(row.id)
        # Most rows are the first of their id in a batch: kept without a call.
        by_id[row.id] = row if kept is None else newest_row(kept, row)

    for snapshot in snapshots:
        row: VersionedRow = snapshot.user_progress
        top = row.version
        keep(users, row)
        for name, model, in_course in _GROUPS:
            rows: tuple[VersionedRow, ...] = getattr(snapshot, name)
            if not rows:
                continue
            by_id = newest[model]
            for row in rows:
                if row.version > top:
                    top = row.version
                if in_course:
                    courses.add(cast(Any, row).course_id)
                # Inline ``keep``: this runs for nearly every row the sink absorbs.
                kept = by_id.get(row.id)
                by_id[row.id] = row if kept is None else newest_row(kept, row)
        for competency in snapshot.user_competencies:
            for row in competency.evidence:
                if row.version > top:
                    top = row.version
                keep(evidence, row)
        if top > versions.get(snapshot.user_id, -1):
            versions[snapshot.user_id] = top
    grouped = {model: list(by_id.values()) for model, by_id in newest.items() if by_id}
    return Gathered(grouped, versions, courses)


def _params(columns: Sequence[str], row: Row | LearningPathRow) -> tuple[Any, ...]:
    return tuple(getattr(row, column) for column in columns)


def after_erasures(messages: Sequence[SinkMessage]) -> tuple[list[Snapshot], list[str]]:
    """The learner snapshots that follow their learner's last erasure in ``messages`` (all
    of them for a learner without one), in order; and the erased user_ids, sorted.

    ``messages`` must list each learner's messages in partition order, as a batch does.
    """
    last_erasure: dict[str, int] = {}
    for index, message in enumerate(messages):
        if isinstance(message, Erasure):
            last_erasure[message.user_id] = index
    kept = [
        message
        for index, message in enumerate(messages)
        if isinstance(message, Snapshot) and index > last_erasure.get(message.user_id, -1)
    ]
    return kept, sorted(last_erasure)


@dataclass(frozen=True, slots=True)
class Written:
    """What a batch wrote: the highest version per learner (what the cache must advance
    to), the courses whose rows it may have changed (whose course views are stale), and the
    stored version of each learner whose content it may have restored (``sinks.content``)."""

    versions: dict[str, int]
    courses: frozenset[str]
    restored: dict[str, int] = field(default_factory=dict)


def touched_courses(gathered: Gathered, courses: Iterable[CourseSnapshot]) -> set[str]:
    """The courses a batch touches, whose course views are stale: those of its learners'
    rows (``gather``) and of its course snapshots."""
    return gathered.courses | {snapshot.course.id for snapshot in courses}


_ERASED_COURSES = sql.SQL("select distinct course_id from course_progress where user_id = any(%s)")


async def write_snapshots(conn: AsyncConnection, messages: Sequence[SinkMessage]) -> dict[str, int]:
    """``write_batch``, for callers that need only the learner versions."""
    return (await write_batch(conn, messages)).versions


async def write_batch(conn: AsyncConnection, messages: Sequence[SinkMessage]) -> Written:
    """Write the messages' rows in one transaction; return the highest version per user_id
    and the courses touched.

    The batch's erasures first delete every row of their learners, then the snapshots that
    follow each learner's last erasure are written (``after_erasures``): an erased learner
    is listed only if it came back in the batch, with the version it came back at.

    Rows that lose to the stored ones are skipped by the database, and their learners are
    still listed: advancing the cache to a version it already holds is a no-op.
    """
    learners, erased = after_erasures(messages)
    gathered = gather(learners)
    grouped = gathered.grouped
    modules, learner_wide = whole_sets(learners)
    catalogs = [message for message in messages if isinstance(message, CatalogSnapshot)]
    courses = [message for message in messages if isinstance(message, CourseSnapshot)]
    restores = content.after_erasures(messages)
    if not grouped and not catalogs and not courses and not erased and not restores:
        return Written({}, frozenset())
    touched = touched_courses(gathered, courses)
    async with conn.transaction(), conn.cursor() as cursor, conn.cursor() as formatter:
        if erased:
            # The erased learners' courses lose them: their course views are stale too.
            await cursor.execute(_ERASED_COURSES, (erased,))
            touched.update(row[0] for row in await cursor.fetchall())
        models, types = await _create_stages(cursor, grouped)

        async def erase() -> None:
            # Deletions before any upsert: the kept snapshots come after the erasures, and
            # the version guard must not compare a re-created learner's rows with erased ones.
            for learner_model in LEARNER_MODELS:
                await cursor.execute(_ERASE[learner_model], (erased,))
            await cursor.execute(ERASE_HISTORY, (erased,))

        async def rest() -> None:
            if CourseProgress in grouped:
                kept = cast(list[CourseProgress], grouped[CourseProgress])
                await write_history(
                    cursor,
                    _STAGED[CourseProgress].stage,
                    learners,
                    {row.id: row for row in kept},
                )
            if modules:
                users, module_courses, versions = zip(
                    *((u, c, v) for (u, c), v in sorted(modules.items())), strict=True
                )
                await cursor.execute(
                    _RETIRE_MODULES, (list(users), list(module_courses), list(versions))
                )
            if learner_wide:
                users, versions = zip(*sorted(learner_wide.items()), strict=True)
                for retract in _RETRACT_LEARNER_WIDE:
                    await cursor.execute(retract, (list(users), list(versions)))
            await _write_catalogs(cursor, catalogs)
            # After the rows: a restore behind its learner's rows finds them.
            await content.write_restores(cursor, restores)

        # Each table: its COPY, then its merge in a pipeline, which sends the merge and
        # returns at once, so that PostgreSQL merges while the sink formats the next table's
        # rows; the pipeline's end waits for the merge. The statements after the last merge
        # go in its pipeline: one round trip for them all rather than one each, which on a
        # busy machine is a wakeup of each process per statement. Any failure still fails
        # the whole transaction.
        # ``formatter`` executes nothing: it lends its connection's dumpers (``_copy_data``).
        data = await _copy_data(formatter, models[0], grouped, types) if models else []
        for index, model in enumerate(models):
            async with cursor.copy(_STAGED[model].copy) as copy:
                for chunk in data:
                    await copy.write(chunk)
            async with conn.pipeline():
                if index == 0 and erased:
                    await erase()
                # A fixed table order and sorted ids: two sinks overlapping during a
                # rebalance lock rows in the same order and cannot deadlock each other.
                await cursor.execute(_STAGED[model].merge)
                if index + 1 < len(models):
                    data = await _copy_data(formatter, models[index + 1], grouped, types)
                else:
                    await rest()
        if not models:
            async with conn.pipeline():
                if erased:
                    await erase()
                await rest()
        # After the pipeline: each course's writes depend on whether its structure won.
        await write_courses(cursor, courses)
        restored = await content.stored_versions(cursor, restores)
    return Written(gathered.versions, frozenset(touched), restored)


# The order a batch merges its tables in: a set's rows before their parent's (``_PARENTS``),
# then the others; fixed, so two sinks lock rows in the same order.
_MERGE_ORDER: tuple[type[Row], ...] = (
    *(model for model in ALL_ROW_MODELS if model.table in _PARENTS),
    *(model for model in ALL_ROW_MODELS if model.table not in _PARENTS),
)


async def _create_stages(
    cursor: AsyncCursor[Any], grouped: Mapping[type[Row], Sequence[Row]]
) -> tuple[list[type[Row]], Mapping[type[Row], list[str]]]:
    """Create the staging table of each table with rows; return those tables, in the order
    a batch merges them, and the staging tables' column types (``_StageTables.types``)."""
    models = [model for model in _MERGE_ORDER if grouped.get(model)]
    if not models:
        return [], {}
    tables = await _stage_tables(cursor)
    # No parameters, so one simple query creates them all: one round trip, not one each.
    await cursor.execute(sql.SQL("; ").join(tables.create[model] for model in models))
    return models, tables.types


class _Kept(AsyncWriter):
    """Copy data kept in memory, to be sent by a later COPY."""

    def __init__(self) -> None:
        self.chunks: list[Buffer] = []

    async def write(self, data: Buffer) -> None:
        self.chunks.append(data)


async def _copy_data(
    formatter: AsyncCursor[Any],
    model: type[Row],
    grouped: Mapping[type[Row], Sequence[Row]],
    types: Mapping[type[Row], list[str]],
) -> list[Buffer]:
    """A table's rows as binary COPY data, signature to trailer, formatted with no COPY
    running: ``formatter`` (a cursor that executes nothing) lends its connection's dumpers,
    so the data is what a COPY's own ``write_row`` would send."""
    staged = _STAGED[model]
    kept = _Kept()
    async with AsyncCopy(formatter, binary=True, writer=kept) as copy:
        copy.set_types(types[model])
        for row in grouped[model]:
            await copy.write_row(staged.values(vars(row)))
    return kept.chunks


async def _write_catalogs(cursor: AsyncCursor[Any], catalogs: Iterable[CatalogSnapshot]) -> None:
    """One statement per catalog snapshot, each entry's in time order (a deletion after a
    definition of the same time): catalog changes are rare, and applying every one in order
    keeps an entry's last definition when a batch both redefines and deletes it."""
    for row, deleted in _catalog_order(catalogs):
        writes = _CATALOG_WRITES[type(row)]
        statement = writes.delete if deleted else writes.define
        await cursor.execute(statement, _params(writes.columns, row))
        if writes.backdate is not None and not deleted:
            created_at = getattr(row, "created_at")  # noqa: B009
            await cursor.execute(writes.backdate, (created_at, row.id, created_at))


def _catalog_order(snapshots: Iterable[CatalogSnapshot]) -> list[tuple[CatalogRow, bool]]:
    """Each snapshot's row and whether it deletes it, in table order, then by id (the lock
    order), then oldest first."""
    rows = [(catalog_row(snapshot), snapshot.deleted) for snapshot in snapshots]
    return sorted(
        rows,
        key=lambda pair: (
            CATALOG_MODELS.index(type(pair[0])),
            pair[0].id,
            pair[0].updated_at,
            pair[1],
        ),
    )


def whole_sets(snapshots: Iterable[Snapshot]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The sets the snapshots carry whole, each at the highest version any carries it at:
    course modules by (user_id, course_id), and learner-wide rows by user_id."""
    modules: dict[tuple[str, str], int] = {}
    learner_wide: dict[str, int] = {}
    for snapshot in snapshots:
        user = snapshot.user_id
        for course_id, version in snapshot.whole_modules.items():
            if version > modules.get((user, course_id), 0):
                modules[user, course_id] = version
        if snapshot.whole_learner_wide > learner_wide.get(user, 0):
            learner_wide[user] = snapshot.whole_learner_wide
    return modules, learner_wide


# Sets a snapshot may carry whole (``Snapshot.whole_modules``, ``whole_learner_wide``): a
# course's modules, and a learner's paths, competencies and evidence. A whole set at version v
# holds every row of the set at v, so the set's rows older than v were removed by then (a
# module dropped from the course, a path that lost the learner's courses, evidence
# withdrawn) and are deleted, after the batch's rows are written. A partial snapshot leaves
# out the rows that did not change and removes none. A removed row cannot come back with an
# older snapshot written again: see ``_not_removed``. The id lists go binary (%b): as text,
# psycopg checks every id for characters to quote.
_RETIRE_MODULES = sql.SQL(
    "delete from module_progress m using unnest(%b::text[], %b::text[], %b::bigint[])"
    " as w(user_id, course_id, version)"
    " where m.user_id = w.user_id and m.course_id = w.course_id and m.version < w.version"
)
_RETRACT_LEARNER_WIDE = tuple(
    sql.SQL(
        "delete from {table} x using unnest(%b::text[], %b::bigint[]) as w(user_id, version)"
        " where x.user_id = w.user_id and x.version < w.version"
    ).format(table=sql.Identifier(table))
    for table in ("learning_path_progress", "user_competencies", "competency_evidence")
)
