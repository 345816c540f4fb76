"""`personae runtime check`: which server, which model, its context, one structured sample."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from agent.config import Settings
from agent.prompts import load_prompt
from agent.runtime.endpoint import open_endpoint
from agent.runtime.structured import GenerationMeta, StructuredGenerator
from agent.schemas.text import NonEmpty, clip


class Genre(StrEnum):
    action = "action"
    comedy = "comedy"
    drama = "drama"
    horror = "horror"
    romance = "romance"
    science_fiction = "science fiction"
    thriller = "thriller"
    animation = "animation"


class FilmSample(BaseModel):
    """The sample object: an enum, a bounded list and a bounded string."""

    genre: Genre
    keywords: list[str] = Field(min_length=1, max_length=3)
    summary: Annotated[str, NonEmpty, clip(160)]


class RuntimeReport(BaseModel):
    base_url: str
    managed: bool
    model: str
    max_model_len: int | None
    server_start_s: float | None
    server_log: str | None
    sample: FilmSample
    meta: GenerationMeta


def run_check(settings: Settings, title: str = "Alien", year: int = 1979) -> RuntimeReport:
    prompt = load_prompt("runtime_check").render(title=title, year=year)
    with open_endpoint(settings) as endpoint:
        generator = StructuredGenerator.for_endpoint(settings, endpoint.base_url, endpoint.model)
        result = generator.generate(prompt, FilmSample, max_tokens=200)
    return RuntimeReport(
        base_url=endpoint.base_url,
        managed=endpoint.managed,
        model=endpoint.model,
        max_model_len=endpoint.max_model_len,
        server_start_s=endpoint.startup_seconds,
        server_log=endpoint.log_path,
        sample=result.value,
        meta=result.meta,
    )
