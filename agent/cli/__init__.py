"""The `personae` command. Each concept registers its commands from its own module."""

from __future__ import annotations

import typer

from agent.cli import (
    chat_cmds,
    data_cmds,
    eval_cmds,
    model_cmds,
    notices,
    profile_cmds,
    rank_cmds,
    recommend_cmds,
    runtime_cmds,
    segment_cmds,
)

app = typer.Typer(
    name="personae",
    help="LLM user profiles, recommendations with reasons, chat and evals on vLLM + Chroma.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _startup() -> None:
    # No docstring: the help text above stays the app's. Runs before every command.
    notices.show_notices()


model_cmds.register(app)
runtime_cmds.register(app)
data_cmds.register(app)
profile_cmds.register(app)
segment_cmds.register(app)
recommend_cmds.register(app)
chat_cmds.register(app)
eval_cmds.register(app)
rank_cmds.register(app)
