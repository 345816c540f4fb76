"""Recommendations with reasons: candidate retrieval (dense, collaborative, popularity),
weighted reciprocal-rank fusion, an LLM re-rank constrained to the candidates, explanations and
the feedback loop. Retrievers are plain functions over explicit inputs, so the eval harness can
fit and call them on a training split."""
