"""Run a loader's rows into the record: rejects, unknown items, strict mode, the report.

Rows arrive in file order from a format module. Each reject is written to the rejects file
(JSONL: file, line, reason, raw) and counted by reason; with `strict`, the first reject
stops the ingest and the transaction rolls back. Nothing is dropped without being counted.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.ingest.rows import Parsed, Rejected, Row
from agent.schemas import Interaction, Item, User
from agent.store.record import RecordStore, WriteCounts, Writer

MAX_RAW_CHARS = 10_000
"""Of a rejected row's text kept in the rejects file (a 16 MB line is named, not copied)."""


class StrictStop(Exception):
    """A --strict ingest met a bad row; nothing was written."""

    def __init__(self, reject: Rejected) -> None:
        super().__init__(f"{reject.source}: {reject.reason}")
        self.reject = reject


@dataclass(frozen=True)
class IngestOptions:
    strict: bool = False
    rejects_path: Path | None = None
    create_items: bool = False
    """Accept interactions with item ids that have no metadata, creating bare items."""


@dataclass
class IngestReport:
    format: str
    files: list[str]
    rows_read: int = 0
    items_added: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    users_added: int = 0
    users_updated: int = 0
    interactions_added: int = 0
    duplicates: int = 0
    items_created_bare: int = 0
    rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    fields_cut: dict[str, int] = field(default_factory=dict)
    """Accepted rows per field cut to its length bound (or, optional and unreadable, left
    out): kept, and counted here rather than lost unnoticed."""
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_second": round(self.rows_per_second, 1)}


class RejectSink:
    """The rejects file, opened on the first reject so clean ingests leave no empty file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self.by_reason: Counter[str] = Counter()
        self._file: IO[str] | None = None

    def add(self, reject: Rejected) -> None:
        self.count += 1
        self.by_reason[reject.reason.split(":", 1)[0]] += 1
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        record = {
            "file": reject.source.file,
            "line": reject.source.line,
            "reason": reject.reason,
            "raw": reject.raw[:MAX_RAW_CHARS],
        }
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def ingest(
    store: RecordStore,
    rows: Iterable[Row],
    format_name: str,
    files: list[str],
    options: IngestOptions,
) -> IngestReport:
    """Write all rows in one transaction and return what happened to each of them."""
    started = time.perf_counter()
    report = IngestReport(format_name, files)
    sink = RejectSink(options.rejects_path)
    try:
        with store.writer() as writer:
            known = writer.item_ids()
            cut: Counter[str] = Counter()
            for row in rows:
                report.rows_read += 1
                if isinstance(row, Parsed):
                    cut.update(set(row.cut))
                reject = _apply(row, writer, known, options, report)
                if reject is not None:
                    sink.add(reject)
                    if options.strict:
                        raise StrictStop(reject)
            writer.flush()
            report.fields_cut = dict(sorted(cut.items()))
            _fill(report, writer.counts, sink, time.perf_counter() - started)
            writer.log_ingest(format_name, files, report.to_dict())
    finally:
        sink.close()
    return report


def _apply(
    row: Row, writer: Writer, known: set[str], options: IngestOptions, report: IngestReport
) -> Rejected | None:
    if isinstance(row, Rejected):
        return row
    record = row.record
    if isinstance(record, Interaction):
        if record.item_id not in known:
            if not options.create_items:
                return _unknown_item(row, record)
            writer.put_item(Item(item_id=record.item_id, title=record.item_id))
            known.add(record.item_id)
            report.items_created_bare += 1
        writer.add_interaction(record)
    elif isinstance(record, Item):
        writer.put_item(record)
        known.add(record.item_id)
    elif isinstance(record, User):
        writer.put_user(record)
    return None


def _unknown_item(row: Parsed, record: Interaction) -> Rejected:
    reason = (
        f"unknown item id: {record.item_id!r} is not in the catalog "
        "(ingest its item file first, or pass --create-items)"
    )
    return Rejected(row.source, reason, row.raw)


def _fill(report: IngestReport, counts: WriteCounts, sink: RejectSink, seconds: float) -> None:
    for name, value in asdict(counts).items():
        setattr(report, name, value)
    report.rejected = sink.count
    report.rejects_by_reason = dict(sink.by_reason.most_common())
    report.rejects_path = str(sink.path) if sink.count and sink.path else None
    report.seconds = round(seconds, 3)
