"""`personae recommend`, `personae explain` and `personae feedback`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.choices import FeedbackName, RerankModeName
from agent.cli.common import (
    BaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    console,
    fail,
    llm_errors,
    make_settings,
    print_json,
    print_result,
)
from agent.cli.deferred import load_embedder, open_client, open_generator, record_at

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.embeddings import Embedder
    from agent.recommend.dense import DenseItems
    from agent.recommend.explain import Explanation
    from agent.recommend.filters import ItemFilter
    from agent.recommend.results import Recommendations
    from agent.recommend.service import Recommender
    from agent.runtime.structured import StructuredGenerator
    from agent.store.item_index import ItemIndex


def lookup_errors() -> tuple[type[Exception], ...]:
    from agent.recommend.filters import FilterError
    from agent.recommend.service import NoProfileError, UnknownItemError, UnknownUserError

    return (NoProfileError, UnknownUserError, UnknownItemError, FilterError, LookupError)


FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        help="Item filter, repeatable (all must hold): category=Drama, category!=Horror, "
        "category=Drama|Comedy, year>=1990, year<2000.",
    ),
]
KOpt = Annotated[int, typer.Option("--k", min=1, help="How many items.")]
UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user.")]


@contextmanager
def llm(settings: Settings, wanted: bool) -> Iterator[StructuredGenerator | None]:
    """A generator on the configured endpoint when `wanted`, else None (no server started)."""
    if not wanted:
        yield None
        return
    with open_generator(settings) as generator:
        yield generator


@contextmanager
def recommender(settings: Settings, generator: StructuredGenerator | None) -> Iterator[Recommender]:
    """A recommender on the record and item vectors. Query texts seen before (a profile's) are
    embedded from the on-disk cache, so the embedding model loads only for new ones."""
    from agent.recommend.service import Recommender
    from agent.store.query_vectors import CachedEmbedder, cache_folder

    with record_at(settings.data_dir) as record:
        embedder = CachedEmbedder(load_embedder(settings), cache_folder(settings.data_dir))
        yield Recommender(settings, record, item_vectors(settings, embedder), generator)


def item_vectors(settings: Settings, embedder: Embedder) -> DenseItems:
    """The item snapshot when the embedded store has a current one (Chroma is then opened
    only if a command needs more than vectors), else the item index, opened now."""
    from agent.recommend.dense import DenseItems
    from agent.store.item_snapshot import load_snapshot, snapshot_folder
    from agent.store.layout import ITEMS_COLLECTION, chroma_dir

    def open_index() -> ItemIndex:
        from agent.store.item_index import ItemIndex

        index = ItemIndex(open_client(settings), embedder)
        if index.get_collection() is None:
            fail("no item index: run `personae index items` first")
        return index

    if not settings.chroma_url:
        folder = snapshot_folder(chroma_dir(settings.data_dir), ITEMS_COLLECTION)
        snapshot = load_snapshot(folder, embedder.model_id)
        if snapshot is not None:
            return DenseItems(embedder, open_index, snapshot)
    return DenseItems(embedder, open_index())


@contextmanager
def failing_clearly(without_llm: str) -> Iterator[None]:
    """Unknown users, items or filters and LLM failures end the command with their message;
    an LLM failure also says how to go on without the LLM."""
    try:
        yield
    except lookup_errors() as err:
        fail(str(err).strip("'\""))
    except llm_errors() as err:
        fail(f"{err}\n({without_llm})")


def parse(rec: Recommender, specs: list[str] | None) -> ItemFilter:
    from agent.recommend.filters import FilterError

    try:
        return rec.parse_filters(specs or [])
    except FilterError as err:
        fail(str(err))


def recommend_cmd(
    user_id: UserArg,
    k: KOpt = 10,
    no_rerank: Annotated[
        bool,
        typer.Option(
            "--no-rerank",
            help="No LLM at all: the ranker's or fusion's order with retrieval reasons.",
        ),
    ] = False,
    filters: FilterOpt = None,
    rerank_mode: Annotated[
        RerankModeName | None,
        typer.Option(
            "--rerank-mode",
            help="How the LLM ranks the top candidates when its rank is blended in (no "
            "ranker, a weight above 0): scored (default): label log-probs, then one request "
            "writes reasons for the K shown; generate: the model writes the ranked list with "
            "a reason per pick (for big models). The tuned weight is looked up per mode.",
        ),
    ] = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recommend unseen items with reasons: dense (profile), collaborative (EASE), sequential
    and popularity candidates, ordered by the learned ranker (`rank fit`), else fused; the LLM
    writes the reasons for the items shown. Without a ranker the LLM's rank of the top
    candidates is blended into the fusion order at the weight `eval tune-blend` chose for the
    model (none chosen: 0, and no re-rank request is sent). The title says which order ran.

    Examples: personae recommend 42 | personae recommend 42 --no-rerank --filter year>=1990"""
    settings = make_settings(model=model, base_url=base_url, data_dir=data_dir,
                             rerank_mode=rerank_mode.value if rerank_mode else None)  # fmt: skip
    with (
        failing_clearly("--no-rerank recommends without the LLM"),
        llm(settings, not no_rerank) as generator,
        recommender(settings, generator) as rec,
    ):
        chosen = parse(rec, filters)
        if generator is None:
            result = rec.recommend(user_id, k, chosen, rerank_with_llm=False)
        else:
            import asyncio

            result = asyncio.run(rec.arecommend(user_id, k, chosen))
        titles = {} if as_json else cited_titles(rec, [c for r in result.items for c in r.cited])
    print_result(result, as_json, lambda shown: show_recommendations(shown, titles))


def cited_titles(rec: Recommender, ids: list[str]) -> dict[str, str]:
    """Titles of the cited history items, for the human view (--json keeps the ids)."""
    return {item_id: item.title for item_id, item in rec.items(ids).items()}


def cites(reason: str, ids: list[str], titles: dict[str, str]) -> str:
    """`reason` and ' (cites: Title [id], ...)' for the cited items it does not name already
    (the retrieval reasons name theirs; the LLM's cite history lines)."""
    unnamed = [i for i in ids if i not in titles or titles[i] not in reason]
    if not unnamed:
        return reason
    return reason + " (cites: " + ", ".join(f"{titles.get(i, 'item')} [{i}]" for i in unnamed) + ")"


def show_recommendations(result: Recommendations, titles: dict[str, str]) -> None:
    from rich.table import Table

    reasons = "LLM" if any(r.reason_by == "llm" for r in result.items) else "retrieval"
    how = f"order: {result.ordering}"
    if result.reranked and result.rerank is not None:
        how += f" ({result.rerank.mode}, weight {result.rerank.blend_from})"
    title = f"user {result.user_id}: top {len(result.items)} ({how}; reasons: {reasons})"
    if result.filters:
        title += " | " + ", ".join(result.filters)
    table = Table(title=title)
    for column in ("rank", "title", "score", "source(s)", "reason"):
        table.add_column(column, overflow="fold")
    for r in result.items:
        name = f"{r.title} ({r.year})" if r.year and str(r.year) not in r.title else r.title
        table.add_row(
            str(r.rank),
            f"{name}\n[dim]id {r.item_id}[/]",
            f"{r.score:.3f}",
            ", ".join(r.sources),
            cites(r.reason, r.cited, titles),
        )
    console.print(table)
    if not result.items:
        console.print("no items left to recommend (everything is seen or filtered out)")
    summary = result.rerank
    if summary is not None and summary.failed_runs:
        console.print(
            f"[yellow]re-rank: {summary.failed_runs} of {summary.runs} run(s) gave no valid "
            f"ranking; those fell back to retrieval order[/]"
        )


def explain_cmd(
    user_id: UserArg,
    item_id: Annotated[str, typer.Argument(metavar="ITEM", help="Any item in the catalog.")],
    k: KOpt = 10,
    filters: FilterOpt = None,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Computed facts only; no LLM wording.")
    ] = False,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Why an item is or is not recommended to a user (any item, in the list or not): whether
    they already have it, filters, each retriever's rank for it, and an LLM explanation that
    cites the user's history."""
    settings = make_settings(model=model, base_url=base_url, data_dir=data_dir)
    with (
        failing_clearly("--no-llm explains without the LLM"),
        llm(settings, not no_llm) as generator,
        recommender(settings, generator) as rec,
    ):
        from agent.recommend.explain import Explainer

        result = Explainer(rec).explain(user_id, item_id, k, parse(rec, filters), generator)
        titles = {} if as_json else cited_titles(rec, result.cited + result.llm_cited)
    print_result(result, as_json, lambda shown: show_explanation(shown, titles))


def show_explanation(result: Explanation, titles: dict[str, str]) -> None:
    from rich.table import Table

    table = Table(title=f"user {result.user_id}, item {result.item_id}: {result.title}")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("verdict", result.verdict)
    table.add_row("facts", "\n".join(result.facts) or "-")
    table.add_row("retrieval reason", cites(result.reason, result.cited, titles))
    if result.llm_explanation is not None:
        table.add_row("explanation", cites(result.llm_explanation, result.llm_cited, titles))
    if result.llm_error:
        table.add_row("explanation", f"[yellow]no valid LLM reply: {result.llm_error}[/]")
    console.print(table)


def feedback_cmd(
    user_id: UserArg,
    item_id: Annotated[str, typer.Argument(metavar="ITEM", help="The item.")],
    label: Annotated[
        FeedbackName, typer.Argument(metavar="LABEL", help="liked|disliked|clicked|dismissed")
    ],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a user's reaction to an item. The item is not recommended to them again;
    liked/clicked count as interest for the collaborative model; the profile becomes stale,
    so `personae update` folds the feedback in."""
    from agent.recommend.feedback import FeedbackTargetError, record_feedback
    from agent.recommend.signals import FeedbackLabel

    settings = make_settings(data_dir=data_dir)
    with record_at(settings.data_dir) as record:
        try:
            event = record_feedback(record, user_id, item_id, FeedbackLabel(label.value))
        except FeedbackTargetError as err:
            fail(str(err).strip("'\""))
    if as_json:
        print_json(event.model_dump(mode="json"))
        return
    console.print(
        f"recorded: user {user_id} {label.value} item {item_id}; "
        "run `personae update` to refresh the profile"
    )


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)
    app.command("explain")(explain_cmd)
    app.command("feedback")(feedback_cmd)
