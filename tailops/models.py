"""Shared result shapes for tools."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ListResult", "Model"]


class Model(BaseModel):
    """Base for tool results: immutable, extra keys refused at construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ListResult(Model):
    """Base for list-shaped results; subclasses add the list field.

    ``truncated``/``truncation`` are set by the tool boundary when the byte cap
    drops items, or by a tool when its own ``limit`` cut the list.
    """

    total: int | None = Field(None, description="Items that matched before limit and caps.")
    truncated: bool = Field(False, description="True when items were left out (limit or output cap).")
    truncation: str | None = Field(None, description="Why items were left out and how to see them.")
