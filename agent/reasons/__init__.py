"""Reasons for the items shown: the evidence computed before any LLM writes (`evidence`), the
checks a written reason is held to without an LLM (`checks`), and the deletion test of its
citations (`deletion`). One source of evidence for recommend, explain and the chat's tools."""
