"""``Stats``: what one generation measured (``GenerationOutput.stats``).

A ``dict`` subclass, so everything written against the earlier plain dict keeps working
(``stats["tokens_per_s"]``, ``stats.get(...)``, ``dict(stats)``, ``json.dumps(stats)``), with one
documented, typed attribute per key (``stats.tokens_per_s``). The keys are exactly the fields of
the C++ ``GenerationStats`` (cpp/include/longspec/engine.h); a key added on one side and not the
other is an error when the first result is built, not a silently missing attribute.
"""
from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class _Field(Generic[T]):
    """A read-only attribute backed by the dict entry of the same name."""

    def __init__(self, doc: str):
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Field[T]: ...
    @overload
    def __get__(self, obj: Stats, owner: type) -> T: ...
    def __get__(self, obj, owner=None):
        return self if obj is None else obj[self.name]

    def __set__(self, obj, value) -> None:
        raise AttributeError(f"Stats.{self.name} is read-only")


class Stats(dict):
    """Statistics of one ``generate`` call (also a dict with the same keys).

    Times are wall-clock seconds measured inside the engine. The speculative fields are zero (the
    histogram empty) when the call decoded plainly.
    """

    prompt_tokens: _Field[int] = _Field("Tokens in the prompt.")
    new_tokens: _Field[int] = _Field("Tokens generated (a stop or EOS token included).")
    prefill_s: _Field[float] = _Field("Prompt processing, target and draft.")
    decode_s: _Field[float] = _Field("Everything after the prompt until the last token.")
    tokens_per_s: _Field[float] = _Field("Decode speed: new_tokens / decode_s.")
    prefill_tokens_per_s: _Field[float] = _Field("Prefill speed: prompt_tokens / prefill_s.")
    speculative: _Field[bool] = _Field("Whether the call decoded speculatively (a draft was used).")
    rounds: _Field[int] = _Field("Speculation rounds (draft, verify, accept).")
    plain_rounds: _Field[int] = _Field("Rounds without a draft level: tree=\"auto\" chose a plain step, or one token was left.")
    mean_accepted: _Field[float] = _Field("tau: tokens emitted per round, accepted draft tokens plus the bonus token.")
    accepted_histogram: _Field[list] = _Field("[k] = rounds that emitted k tokens, k = 1 .. tree depth + 1.")
    draft_s: _Field[float] = _Field("Time spent drafting.")
    verify_s: _Field[float] = _Field("Time spent verifying with the target.")
    other_s: _Field[float] = _Field("Acceptance, commit, sampling and bookkeeping.")
    target_cache_bytes: _Field[int] = _Field("K/V memory the target's cache holds for this request.")
    draft_cache_bytes: _Field[int] = _Field("The draft's ring buffer (constant in the context length).")
    best_n_tokens: _Field[dict] = _Field("With LONGSPEC_BEST_N_PROBE=N1,N2,... (greedy, a LongSpec draft): {N: tokens "
                                         "the rounds would have emitted verifying only their N best nodes}.")

    FIELDS: tuple[str, ...] = ()  # filled in below, in declaration order

    @classmethod
    def from_engine(cls, values: dict[str, Any]) -> Stats:
        """Wraps the engine's statistics; they must name exactly the declared fields."""
        missing = [k for k in cls.FIELDS if k not in values]
        extra = [k for k in values if k not in cls.FIELDS]
        if missing or extra:
            raise RuntimeError(f"longspec internal error: the engine's statistics do not match Stats "
                               f"(missing {missing}, unexpected {extra})")
        return cls((k, values[k]) for k in cls.FIELDS)

    def __repr__(self) -> str:
        return f"Stats({dict.__repr__(self)})"


Stats.FIELDS = tuple(name for name, value in vars(Stats).items() if isinstance(value, _Field))
