"""personae: LLM-written user profiles, recommendations with reasons, chat and evals."""

__version__ = "0.1.0"
