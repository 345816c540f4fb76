"""A chat session about ONE user: a LangChain agent (`create_agent`) over the tools bound to
that user, a versioned system prompt, bounded steps, and answers checked against what the
tools returned.

A turn: the router (`agent.chat.router`) makes the tool calls the question obviously needs;
otherwise the model picks them. The model writes the answer. `agent.chat.answer_check` holds
it to the tool results of this turn (titles) and to the user's ratings (likes, dislikes); an
answer that fails is re-asked once with the reasons, and if it fails again it is replaced by
a plain rendering of the tool results. The `Turn` records all of it.

A profile edit asked in the chat ("no more horror") is proposed and stored only on the user's
yes, both without the model (`agent.chat.edit_turns`).

Two tool-calling paths, chosen by `Settings.chat_tool_calling`:
- constrained (default): `ConstrainedToolChatModel` decodes every reply against a JSON schema
  of the tools' arguments plus a final answer; valid by construction, for small models.
- native: the chat model's own `bind_tools` (vLLM with `--tool-call-parser`), for big models
  whose chat template supports tools."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.errors import GraphRecursionError
from pydantic import BaseModel

from agent.chat.answer_check import AnswerCheck, UserRatings, check_answer
from agent.chat.constrained import ROUTED, ChatReplyError, ConstrainedToolChatModel
from agent.chat.edit_turns import EDIT_TOOL, proposal_answer, reply_to_proposal, with_proposal
from agent.chat.router import route
from agent.chat.turn import (
    CitedItem,
    ToolCallRecord,
    Turn,
    plain_rendering,
    required_sets,
    shown_ids,
    tool_records,
)
from agent.config import Settings
from agent.prompts import load_prompt
from agent.runtime.structured import to_langchain
from tools.context import ToolContext
from tools.registry import argument_models, build_tools

Stop = Literal["step_limit"] | None


def signature(model: type[BaseModel]) -> str:
    """`a, b?` for the prompt's tool list (`?`: optional)."""
    fields = model.model_fields
    return ", ".join(f + ("" if info.is_required() else "?") for f, info in fields.items())


class ChatSession:
    def __init__(
        self, settings: Settings, ctx: ToolContext, chat_model: BaseChatModel, router: bool = True
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.mode = settings.chat_tool_calling
        self.use_router = router
        self.models = argument_models(ctx.catalog)
        self.tools = {t.name: t for t in build_tools(ctx)}
        listed = [
            {"name": t.name, "description": t.description, "signature": signature(self.models[n])}
            for n, t in self.tools.items()
        ]
        rendered = load_prompt("chat").render(tools=listed if self.mode == "constrained" else [])
        self.prompt = rendered.ref
        self.model = self._model(chat_model)
        self.agent = create_agent(
            self.model, list(self.tools.values()), system_prompt=rendered.messages[0].content
        )
        self.system = rendered.messages[0].content
        self.recursion_limit = 2 * settings.chat_max_steps + 2
        """Backstop for the native path (the constrained path ends itself): model and tool
        nodes are one graph step each, so this allows max_steps tool rounds and an answer."""
        self.messages: list[BaseMessage] = []

    def _model(self, chat_model: BaseChatModel) -> BaseChatModel:
        s = self.settings
        if self.mode == "native":
            if "max_tokens" in type(chat_model).model_fields:
                return chat_model.model_copy(update={"max_tokens": s.chat_max_tokens})
            return chat_model
        return ConstrainedToolChatModel(
            inner=chat_model,
            max_tokens=s.chat_max_tokens,
            max_steps=s.chat_max_steps,
            max_reasks=s.chat_max_reasks,
        )

    def reset(self) -> None:
        self.messages = []

    # -- a turn -----------------------------------------------------------------------------

    def routed_calls(self, question: str) -> list[BaseMessage]:
        """The router's calls, run: one tool-calling message and its result per call."""
        if not self.use_router:
            return []
        messages: list[BaseMessage] = []
        for call in route(question, self.ctx.catalog):
            call_id = f"route_{uuid.uuid4().hex[:12]}"
            tool_call = {"name": call.name, "args": call.args, "id": call_id, "type": "tool_call"}
            messages.append(AIMessage(content="", tool_calls=[tool_call],
                                      additional_kwargs={ROUTED: True}))  # fmt: skip
            result = self.tools[call.name].invoke(tool_call)
            assert isinstance(result, ToolMessage)
            messages.append(result)
        return messages

    def ask(self, question: str) -> Turn:
        started = time.monotonic()
        inputs: list[BaseMessage] = [*self.messages, HumanMessage(content=question)]
        plain = self.decide_edit(question) if self.ctx.pending_edit is not None else None
        routed = self.routed_calls(question) if plain is None else []
        if routed and all(m.name == EDIT_TOOL for m in routed if isinstance(m, ToolMessage)):
            plain = self.proposal_turn(question, inputs, routed)
        if plain is not None:  # answered without the model
            plain.latency_s = round(time.monotonic() - started, 3)
            return plain
        messages, stopped, error = self._run([*inputs, *routed])
        new = messages[len(inputs) :]
        answer_msg = _final(new) if stopped is None and error is None else None
        turn = self._turn(question, new, answer_msg, stopped, error)
        turn.routed = bool(routed)
        if answer_msg is not None:
            answer_msg = self._verify(turn, [*inputs, *new], new)
            turn.answer, replaced = with_proposal(turn.answer, new)
            turn.replaced = turn.replaced or replaced
            answer_msg = AIMessage(content=turn.answer)
            self.messages = _last_turns([*messages[:-1], answer_msg], self._turns_kept)
        turn.latency_s = round(time.monotonic() - started, 3)
        return turn

    def proposal_turn(
        self, question: str, inputs: list[BaseMessage], routed: list[BaseMessage]
    ) -> Turn:
        """A turn that only asks to change the profile: the proposal (or why it cannot be made)
        in the tool's own words, without the model, which might say the edit was saved."""
        turn = self._plain_turn(
            question, proposal_answer(routed), tool_records(routed, self.models)
        )
        turn.routed = True
        self.messages = _last_turns([*inputs, *routed, AIMessage(content=turn.answer)],
                                    self._turns_kept)  # fmt: skip
        return turn

    def decide_edit(self, question: str) -> Turn | None:
        """The reply to a proposed edit: a yes stores it, a no drops it, without the model;
        any other message drops it (None) and is answered as usual."""
        decided = reply_to_proposal(self.ctx, question)
        if decided is None:
            return None
        turn = self._plain_turn(question, *decided)
        talk = [*self.messages, HumanMessage(content=question), AIMessage(content=turn.answer)]
        self.messages = _last_turns(talk, self._turns_kept)
        return turn

    def _plain_turn(self, question: str, answer: str, calls: list[ToolCallRecord]) -> Turn:
        """A turn answered without the model."""
        return Turn(user_id=self.ctx.user_id, question=question, answer=answer, cited=[],
                    tool_calls=calls, model_calls=0, latency_s=0.0, tokens_in=0, tokens_out=0,
                    mode=self.mode, prompt=self.prompt)  # fmt: skip

    @property
    def _turns_kept(self) -> int:
        return self.settings.chat_context_turns

    def _run(self, payload: list[BaseMessage]) -> tuple[list[BaseMessage], Stop, str | None]:
        messages = payload
        config: Any = {"recursion_limit": self.recursion_limit}
        state_in: Any = {"messages": payload}
        try:
            for state in self.agent.stream(state_in, config, stream_mode="values"):
                messages = list(state["messages"])
        except GraphRecursionError:
            return messages, "step_limit", None
        except ChatReplyError as err:
            return messages, None, str(err)
        return messages, None, None

    def _turn(
        self,
        question: str,
        new: list[BaseMessage],
        answer_msg: AIMessage | None,
        stopped: Stop,
        error: str | None,
    ) -> Turn:
        asked = [m for m in new if isinstance(m, AIMessage) and not m.additional_kwargs.get(ROUTED)]
        answer = answer_msg.text.strip() if answer_msg is not None else ""
        if stopped:
            answer = f"(no answer within {self.settings.chat_max_steps} tool steps)"
        turn = Turn(
            user_id=self.ctx.user_id,
            question=question,
            answer=answer,
            cited=[],
            tool_calls=tool_records(new, self.models),
            model_calls=len(asked),
            latency_s=0.0,
            tokens_in=0,
            tokens_out=0,
            truncated=bool(answer_msg and answer_msg.additional_kwargs.get("truncated")),
            stopped=stopped,
            error=error,
            mode=self.mode,
            prompt=self.prompt,
        )
        _add_usage(turn, asked)
        return turn

    # -- the answer check -------------------------------------------------------------------

    def check(self, answer: str, new: list[BaseMessage]) -> AnswerCheck:
        history = self.ctx.history()
        items = self.ctx.recommender.items([e.item_id for e in history])
        return check_answer(answer, self.ctx.catalog, shown_ids(new), UserRatings(history, items),
                            required_sets(new))  # fmt: skip

    def _verify(self, turn: Turn, talk: list[BaseMessage], new: list[BaseMessage]) -> AIMessage:
        """Check the answer; re-ask once, then replace. Returns the answer message kept."""
        check = self.check(turn.answer, new)
        if not check.ok:
            turn.first_answer, turn.first_check, turn.reasked = turn.answer, check, True
            retry = self._reask(turn, talk, check)
            if retry is not None:
                turn.answer = retry.text.strip()
                turn.truncated = bool(retry.additional_kwargs.get("truncated"))
                check = self.check(turn.answer, new)
        turn.check = check
        if not check.ok:
            turn.answer, turn.replaced, turn.truncated = plain_rendering(new), True, False
        final = self.check(turn.answer, new) if turn.replaced else check
        names = self.ctx.catalog
        turn.cited = [CitedItem(item_id=i, title=names.name(i)) for i in final.cited]
        turn.ungrounded_titles = final.ungrounded
        return AIMessage(content=turn.answer)

    def _reask(self, turn: Turn, talk: list[BaseMessage], check: AnswerCheck) -> AIMessage | None:
        """The model's second answer, with the problems of its first; None if unparsable."""
        recheck = load_prompt("chat_recheck").render(problems=check.problems())
        messages = [SystemMessage(content=self.system), *talk, *to_langchain(recheck.messages)]
        try:
            reply = self.model.invoke(messages)
        except ChatReplyError:
            return None
        turn.model_calls += 1
        _add_usage(turn, [reply])
        if not isinstance(reply, AIMessage) or reply.tool_calls:
            return None
        return reply


def _add_usage(turn: Turn, asked: Sequence[BaseMessage]) -> None:
    for message in asked:
        usage: Any = getattr(message, "usage_metadata", None) or {}
        turn.tokens_in += int(usage.get("input_tokens", 0))
        turn.tokens_out += int(usage.get("output_tokens", 0))


def _final(new: list[BaseMessage]) -> AIMessage | None:
    last = new[-1] if new else None
    return last if isinstance(last, AIMessage) and not last.tool_calls else None


def _last_turns(messages: list[BaseMessage], turns: int) -> list[BaseMessage]:
    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return messages[starts[-turns] :] if len(starts) > turns else messages
