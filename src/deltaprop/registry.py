"""Looking names up in the registries (activations, likelihoods, optimizers, schedules,
initializers): one rule for all, so every unknown name gets the same kind of error."""

from __future__ import annotations

__all__ = ["lookup"]


def lookup(kind: str, registry, name, aliases: dict | None = None) -> str:
    """The registry key for ``name`` (case-insensitive, aliases allowed).

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If the name is unknown; the message names ``kind`` and lists the valid names.
    """
    if not isinstance(name, str):
        raise TypeError(f"{kind}: expected a name (str), found {type(name).__name__}")
    key = name.lower()
    key = (aliases or {}).get(key, key)
    if key not in registry:
        raise ValueError(f"{kind}: unknown name {name!r}; expected one of {', '.join(registry)}")
    return key
