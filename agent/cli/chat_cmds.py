"""`personae chat USER` (interactive) and `personae ask USER "question"` (one shot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from agent.cli.common import (
    BaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    console,
    fail,
    make_settings,
    print_result,
    server_errors,
)
from agent.cli.deferred import load_embedder, open_client, open_endpoint, record_at

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agent.chat.session import ChatSession, Turn
    from agent.config import Settings


def llm_errors() -> tuple[type[BaseException], ...]:
    """No endpoint, or the transport failed mid-chat."""
    from agent.runtime.structured import TRANSPORT_ERRORS

    return (*server_errors(), *TRANSPORT_ERRORS)


UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user the chat is about.")]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--tool-calling",
        help="constrained (JSON-schema decoding, any model) or native (server tool calling).",
    ),
]
HELP = (
    "Ask about your profile or recommendations, or change it ('no more horror'; saved when "
    "you say yes). /profile, /reset, /quit."
)


@contextmanager
def llm(settings: Settings) -> Iterator[BaseChatModel]:
    """The chat model on the configured endpoint (a managed server lives for the block)."""
    from agent.runtime.structured import make_chat_model

    with open_endpoint(settings) as endpoint:
        yield make_chat_model(settings, endpoint.base_url, endpoint.model)


@contextmanager
def session(settings: Settings, user_id: str) -> Iterator[ChatSession]:
    """A session bound to `user_id`; fails early for an unknown or unprofiled user."""
    from agent.chat.session import ChatSession
    from agent.recommend.service import NoProfileError, Recommender, UnknownUserError
    from agent.store.item_index import ItemIndex
    from agent.store.profile_index import ProfileIndex
    from tools.context import ToolContext

    with record_at(settings.data_dir) as record:
        embedder = load_embedder(settings)
        index = ItemIndex(open_client(settings), embedder)
        if index.get_collection() is None:
            fail("no item index: run `personae index items` first")
        rec = Recommender(settings, record, index)
        try:
            rec.profile_of(user_id)
        except (NoProfileError, UnknownUserError) as err:
            fail(str(err).strip("'\""))
        ctx = ToolContext(user_id, rec, ProfileIndex(open_client(settings), embedder))
        with llm(settings) as model:
            yield ChatSession(settings, ctx, model)


def ask_cmd(
    user_id: UserArg,
    question: Annotated[str, typer.Argument(help="The question.")],
    tool_calling: ModeOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask one question about USER; the agent looks the answer up with tools bound to USER.

    Example: personae ask 42 "why did you recommend Alien?" --json"""
    settings = make_settings(
        model=model, base_url=base_url, data_dir=data_dir, chat_tool_calling=tool_calling
    )
    try:
        with session(settings, user_id) as chat:
            turn = chat.ask(question)
    except llm_errors() as err:
        fail(f"LLM server: {err}")
    print_result(turn, as_json, show_turn)
    if turn.error:
        raise typer.Exit(1)


def chat_cmd(
    user_id: UserArg,
    tool_calling: ModeOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Chat about USER: questions answered with tools bound to USER; the conversation is kept
    (the last few turns). A request to change the profile ("no more horror", "never show me
    musicals") is proposed and saved only when USER replies yes. /profile shows the stored
    profile, /reset forgets the conversation, /quit (or Ctrl-D) leaves."""
    settings = make_settings(
        model=model, base_url=base_url, data_dir=data_dir, chat_tool_calling=tool_calling
    )
    try:
        with session(settings, user_id) as chat:
            console.print(f"chat about user {user_id}. {HELP}")
            repl(chat)
    except llm_errors() as err:
        fail(f"LLM server: {err}")


def repl(chat: ChatSession) -> None:
    from tools.user_tools import get_profile

    while True:
        try:
            line = console.input("[bold]you> [/]").strip()
        except EOFError:
            return
        if line in ("/quit", "/exit"):
            return
        if line == "/reset":
            chat.reset()
            console.print("conversation forgotten")
        elif line == "/profile":
            console.print(get_profile(chat.ctx).text, markup=False)
        elif line.startswith("/"):
            console.print(f"unknown command {line}. {HELP}", markup=False)
        elif line:
            console.print("[dim]thinking...[/]")
            show_turn(chat.ask(line))


def show_turn(turn: Turn) -> None:
    for call in turn.tool_calls:
        args = ", ".join(f"{k}={v!r}" for k, v in call.args.items())
        status = "ok" if call.ok else ("invalid" if not call.valid else "error")
        routed = " (router)" if call.routed else ""
        console.print(f"[dim]tool {call.name}({escape(args)}): {status}{routed}[/]")
    if turn.error:
        console.print(f"[bold red]error:[/] {escape(turn.error)}")
        return
    console.print(f"[bold]personae>[/] {escape(turn.answer)}", highlight=False)
    if turn.cited:
        cited = "; ".join(c.title for c in turn.cited)
        console.print(f"cited: {cited}", markup=False, highlight=False)
    if turn.replaced and turn.check is not None:
        problems = "; ".join(turn.check.problems())
        console.print(f"[yellow]the model's answer was replaced by the tool results: "
                      f"{escape(problems)}[/]")  # fmt: skip
    elif turn.reasked:
        console.print("[dim]re-asked once: the first answer did not match the tool results[/]")
    console.print(f"[dim]{turn.latency_s:.1f} s, {turn.model_calls} model call(s)[/]")


def register(app: typer.Typer) -> None:
    app.command("ask")(ask_cmd)
    app.command("chat")(chat_cmd)
