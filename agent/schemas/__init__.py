"""Pydantic schemas shared across personae. Each concept keeps its models in its own module."""

from agent.schemas.catalog import EventType, Interaction, Item, User

__all__ = ["EventType", "Interaction", "Item", "User"]
