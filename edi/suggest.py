""" "Did you mean …?" for carrier names, command names and configuration keys (difflib)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel


def close_matches(word: str, candidates: Iterable[str], count: int = 1) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=count, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`"did you mean 'colonial'?"`, or "" when nothing is close."""
    matches = close_matches(word, candidates)
    return f"did you mean {matches[0]!r}?" if matches else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def allowed_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys a TOML table at `path` inside `model` may hold (field names and aliases)."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            # A dict keyed by the user's own names (plans.<code>): stay on the value model.
            continue
        models = _models_in(field.annotation)
        current = models[0] if models else None
    if current is None:
        return []
    return sorted(f.alias or name for name, f in current.model_fields.items())
