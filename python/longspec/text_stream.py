"""Turning a growing list of generated tokens into text: incremental decoding and stop strings.

``Engine.generate`` (with ``stop=`` or ``text_callback=``), ``Engine.stream`` and the server all
need the same two things, so they live here once:

- Text appears as soon as it is final. Decoding only a short window of recent tokens keeps the
  cost per chunk constant (decoding everything again each time is quadratic in the length), and a
  piece that ends in an unfinished UTF-8 sequence (U+FFFD) waits for the tokens that complete it.
- Stop strings, as in OpenAI's API: generation ends where one first appears and the text excludes
  it. Text that might be the start of a stop string is held back until the next tokens settle it,
  so a consumer never sees part of a stop string.
"""
from __future__ import annotations

from typing import Callable, Sequence

MAX_STOP_STRINGS = 16


def check_stop_strings(stop) -> list[str]:
    """``stop`` as given by a user (None, a str or a list of str) -> a list of non-empty strings."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, (bytes, dict)) or not isinstance(stop, Sequence):
        raise TypeError(f"stop must be a str or a list of str, got {type(stop).__name__}")
    if len(stop) > MAX_STOP_STRINGS:
        raise ValueError(f"stop holds {len(stop)} strings; at most {MAX_STOP_STRINGS} are allowed")
    out = []
    for i, s in enumerate(stop):
        if not isinstance(s, str):
            raise TypeError(f"stop[{i}] must be a str, got {type(s).__name__}")
        if not s:
            raise ValueError(f"stop[{i}] must not be empty")
        out.append(s)
    return out


class TextStream:
    """Follows the tokens of one generation; ``push`` returns the text that became final.

    After a stop string matched, ``stopped`` is True, ``text`` ends just before it and
    ``token_count`` is the number of tokens up to and including the one that completed it
    (later tokens of the same chunk are ignored).
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str] = ()):
        self._decode = decode
        self._stops = list(stops)
        self._longest_stop = max((len(s) for s in self._stops), default=0)
        self.tokens: list[int] = []
        self.text = ""            # the decoded text so far (cut before the stop string once matched)
        self.stopped = False
        self.token_count = 0
        self._shown = 0           # characters of ``text`` already handed out
        self._window_start = 0    # decode tokens[_window_start:] ...
        self._window_read = 0     # ... of which tokens[_window_start:_window_read] are already in text

    # -- incremental decoding ------------------------------------------------------------
    def _decode_new(self, final: bool) -> str:
        """Text added by the tokens after ``_window_read``. Decoding starts a few tokens earlier
        so that tokenizers that render a token differently at the start of a text (leading
        spaces) still give the right characters."""
        window = self.tokens[self._window_start:]
        before = self._decode(self.tokens[self._window_start:self._window_read])
        after = self._decode(window)
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""
        self._window_start, self._window_read = self._window_read, len(self.tokens)
        return after[len(before):]

    def _first_stop(self, text: str, search_from: int) -> int | None:
        best = None
        for s in self._stops:
            at = text.find(s, search_from)
            if at >= 0 and (best is None or at < best):
                best = at
        return best

    def _held_back(self) -> int:
        """How many characters at the end of ``text`` could begin a stop string."""
        tail = self.text[-self._longest_stop:] if self._longest_stop else ""
        for keep in range(min(len(tail), self._longest_stop - 1), 0, -1):
            suffix = tail[-keep:]
            if any(s.startswith(suffix) for s in self._stops):
                return keep
        return 0

    def _release(self, upto: int) -> str:
        piece = self.text[self._shown:upto]
        self._shown = max(self._shown, upto)
        return piece

    # -- public ----------------------------------------------------------------------------
    def push(self, new_tokens: Sequence[int]) -> str:
        if self.stopped:
            return ""
        before_push = len(self.tokens)
        self.tokens.extend(int(t) for t in new_tokens)
        added = self._decode_new(final=False)
        if not added:
            return ""
        search_from = max(0, len(self.text) - self._longest_stop + 1)
        self.text += added
        if not self._stops:
            self.token_count = len(self.tokens)
            return self._release(len(self.text))
        cut = self._first_stop(self.text, search_from)
        if cut is None:
            self.token_count = len(self.tokens)
            return self._release(len(self.text) - self._held_back())
        self.stopped = True
        self.text = self.text[:cut]
        self.token_count = self._tokens_through_stop(before_push)
        return self._release(cut)

    def _tokens_through_stop(self, before_push: int) -> int:
        # A stop string ends once per generation, so decoding the chunk's prefixes here is cheap.
        for n in range(before_push + 1, len(self.tokens) + 1):
            if self._first_stop(self._decode(self.tokens[:n]), 0) is not None:
                return n
        return len(self.tokens)

    def finish(self) -> str:
        """Generation ended: the text still held back (an unfinished character, a would-be stop
        string that never completed)."""
        if not self.stopped:
            self.text += self._decode_new(final=True)
            self.token_count = len(self.tokens)
        return self._release(len(self.text))
