"""Loaders for interaction data: one module per file format, one pipeline into the record."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path

from agent.ingest import amazon, movielens, movielens100k, tabular
from agent.ingest.rows import ReadContext, Row


class Format(StrEnum):
    MOVIELENS_100K = "movielens-100k"
    MOVIELENS = "movielens"
    AMAZON_REVIEWS = "amazon-reviews"
    CSV = "csv"
    JSONL = "jsonl"


def read_rows(
    format_name: Format,
    paths: Sequence[Path],
    ctx: ReadContext | None = None,
    options: tabular.TabularOptions | None = None,
) -> Iterator[Row]:
    """The rows of `paths` read as `format_name`, in the order the store must see them."""
    ctx = ctx or ReadContext()
    if format_name is Format.MOVIELENS_100K:
        return movielens100k.read(paths, ctx)
    if format_name is Format.MOVIELENS:
        return movielens.read(paths, ctx)
    if format_name is Format.AMAZON_REVIEWS:
        return amazon.read(paths, ctx)
    options = options or tabular.TabularOptions()
    if format_name is Format.CSV:
        return tabular.read_csv(paths, ctx, options)
    return tabular.read_jsonl_files(paths, ctx, options)
