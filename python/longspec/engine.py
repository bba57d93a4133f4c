"""The Python front: ``Engine(target, draft).generate(...)``.

Everything numeric happens in the C++ engine (``longspec._C``); this module checks the prompt and
the constructor's arguments (errors name the argument), hands the sampling settings to the engine
as one ``_C.SamplingParams`` (converted and validated in C++, errors naming the field), handles
text through the checkpoint's tokenizer, and shapes results.
"""
from __future__ import annotations

import numbers
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from . import _C
from .models import resolve_model_path
from .stats import Stats
from .text_stream import TextStream, check_stop_strings

_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1


@dataclass
class GenerationOutput:
    """What ``Engine.generate`` returns."""

    tokens: list[int]           # the new tokens (the stop/EOS token, or the token that completed a
                                # stop string, included)
    text: str | None            # the new tokens decoded, cut before a stop string (None when the
                                # engine has no tokenizer)
    finish_reason: str          # "length" | "eos" | "stop" | "context_full"
    stats: Stats = field(default_factory=Stats)  # tokens_per_s, prefill_s, mean_accepted, ... (a dict too)


def _check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value}")
    return value


def _check_token_list(name: str, value, vocab_size: int) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of token ids, got {type(value).__name__}")
    out = []
    for i, t in enumerate(value):
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"{name}[{i}] must be an int token id, got {type(t).__name__}")
        if not 0 <= int(t) < vocab_size:
            raise ValueError(f"{name}[{i}] = {int(t)} is outside the vocabulary [0, {vocab_size})")
        out.append(int(t))
    return out


def _check_tree(value) -> list[int]:
    if value is None or (isinstance(value, str) and value == "auto"):
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise TypeError("tree must be \"auto\" or a non-empty list of level widths, e.g. [4, 16, 16, 16, 16]")
    return [_check_int(f"tree[{i}]", w, lo=1, hi=_INT32_MAX) for i, w in enumerate(value)]


def parse_tree_spec(text: str) -> tuple[list[int], int | None]:
    """A tree as the command lines write it: level widths, optionally ``@N`` for ``verify_nodes``
    ("16,32,32,32,32@69": grow that tree, verify its best 69 nodes). Raises ValueError."""
    widths, at, keep = text.strip().partition("@")
    try:
        shape = [int(w) for w in widths.split(",")]
        verify = int(keep) if at else None
    except ValueError:
        raise ValueError(f"tree must be comma-separated widths, optionally @N, e.g. 16,32,32,32,32@69; got {text!r}") from None
    if not shape or any(w < 1 for w in shape) or (verify is not None and verify < 1):
        raise ValueError(f"tree widths and @N must be positive, got {text!r}")
    return shape, verify


def format_tree_spec(shape: Sequence[int], verify_nodes: int | None = None) -> str:
    """The inverse of parse_tree_spec."""
    text = ",".join(str(w) for w in shape)
    return f"{text}@{verify_nodes}" if verify_nodes else text


def device_is_gpu(engine) -> bool:
    return engine._engine.device != "cpu"


class _TokenizerLoad:
    """``Tokenizer.from_checkpoint(path)`` on a thread of its own; ``result()`` waits and returns
    it or raises what it raised."""

    def __init__(self, path: str):
        self._outcome: dict = {}
        self._thread = threading.Thread(target=self._run, args=(path,), name="longspec-tokenizer", daemon=True)
        self._thread.start()

    def _run(self, path: str) -> None:
        try:
            from .tokenizer import Tokenizer

            self._outcome["tokenizer"] = Tokenizer.from_checkpoint(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._outcome["error"] = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self):
        self.wait()
        if "error" in self._outcome:
            raise self._outcome.pop("error")
        return self._outcome["tokenizer"]


class Engine:
    """A loaded target model (and optional LongSpec draft) ready to generate.

    Args:
        target: a Hugging Face checkpoint directory, a ``.gguf`` file, or ``"smollm2"`` (the
            built-in default, SmolLM2-135M-Instruct).
        draft: a longspec draft checkpoint directory, a smaller language model of the target's
            tokenizer (a ``.gguf`` file or a checkpoint directory: the classic two-model draft,
            with its own KV cache, e.g. Qwen2.5-Coder-0.5B for Qwen2.5-Coder-1.5B), ``None`` for
            no draft, ``"auto"`` to use the draft packaged for this exact target when there is
            one, or ``"oracle"`` (a test mode: the target drafts for itself, so greedy chains
            accept their full depth).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        num_threads: CPU threads (0 = all cores).
        max_context: cap on prompt + generated tokens (0 = the model's context length).
        tree: default speculation tree shape (level widths), e.g. ``[4, 16, 16, 16, 16]``; without
            it the draft's own. ``"auto"``: every round's shape (or a plain step) is chosen among
            sub-shapes of the draft's tree from measured round costs and the tau seen so far (the
            default on a GPU). Naming a tree here, ``"auto"`` included, also makes decoding
            speculative by default on the CPU (see ``speculative_default``).
        prefill_chunk: prompt tokens processed per forward pass (0 = the device default: 256 on
            the CPU, 2048 on a GPU).
        tokenizer: load the checkpoint's tokenizer (needed for text prompts and ``out.text``).
    """

    def __init__(self, target: str = "smollm2", draft: str | None = "auto", device: str = "auto", *,
                 num_threads: int = 0, max_context: int = 0, tree: Sequence[int] | None = None,
                 prefill_chunk: int = 0, tokenizer: bool = True):
        if not isinstance(device, str):
            raise TypeError(f"device must be a str, got {type(device).__name__}")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        num_threads = _check_int("num_threads", num_threads, lo=0, hi=1024)
        max_context = _check_int("max_context", max_context, lo=0, hi=_INT64_MAX)
        prefill_chunk = _check_int("prefill_chunk", prefill_chunk, lo=0, hi=8192)
        tree_shape = _check_tree(tree)
        self.target_path = resolve_model_path(target, "target")
        oracle = isinstance(draft, str) and draft == "oracle"
        self.draft_path = None if oracle else self._resolve_draft(draft)
        # The tokenizer loads on a second thread while the C++ engine, which releases the GIL,
        # reads the weights: a first run pays for the longer of the two, not their sum.
        loading = _TokenizerLoad(self.target_path) if tokenizer else None
        try:
            self._engine = _C.Engine(self.target_path, self.draft_path or "", device, num_threads, max_context,
                                     tree_shape, prefill_chunk, oracle)
        except BaseException:
            if loading is not None:
                loading.wait()  # the engine's error is the one to report
            raise
        self._tokenizer = loading.result() if loading is not None else None
        auto = isinstance(tree, str) and tree == "auto"
        self._tree_given = bool(tree_shape) or auto
        # The per-call default: "auto" on a GPU or when asked for, else the engine's tree.
        self._default_call_tree = "auto" if (auto or (tree is None and device_is_gpu(self))) else None
        self.target_info: dict = self._engine.target_info
        # The engine's cap on prompt + generated tokens; its K/V cache is allocated at this size.
        model_limit = int(self.target_info["max_position"])
        self.context_limit: int = min(max_context, model_limit) if max_context > 0 else model_limit

    def _resolve_draft(self, draft) -> str | None:
        if draft is None:
            return None
        if not isinstance(draft, (str, os.PathLike)):
            raise TypeError(f"draft must be a path, 'auto' or None, got {type(draft).__name__}")
        if os.fspath(draft) == "auto":
            from .drafts import packaged_draft_for

            return packaged_draft_for(self.target_path)
        # A LongSpec draft directory, or a smaller model of the same tokenizer (a .gguf file or a
        # checkpoint directory): the engine tells them apart by the directory's config.json.
        return resolve_model_path(draft, "draft")

    # ------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def device(self) -> str:
        return self._engine.device

    @property
    def has_draft(self) -> bool:
        return self._engine.has_draft

    @property
    def draft_info(self) -> dict | None:
        return self._engine.draft_info

    @property
    def tree(self) -> list[int]:
        return list(self._engine.tree_shape)

    @property
    def speculative_default(self) -> bool:
        """Whether ``generate`` decodes speculatively when a call names neither ``speculative`` nor
        ``tree``: with a draft, on a GPU (with ``self.tree``), and on the CPU only when the engine
        was given a tree. Two CPU cores run a verify pass's extra rows near their arithmetic peak,
        so every shape measured loses to plain decoding there except a 3-token chain at high tau
        (bench/results/cpu_spec_rounds_2026-11-26.md); plain is the CPU default until a tree is
        chosen per round from measured costs."""
        return self.has_draft and (self.device != "cpu" or self._tree_given)

    def speculates(self, speculative: bool | None = None, tree: Sequence[int] | None = None) -> bool:
        """Whether ``generate(..., speculative=speculative, tree=tree)`` decodes speculatively."""
        if speculative is None:  # the caller left it to us: a tree asks for speculation
            return self.has_draft and (tree is not None or self.speculative_default)
        if not isinstance(speculative, bool):
            raise TypeError(f"speculative must be a bool or None, got {type(speculative).__name__}")
        return self.has_draft and speculative

    def encode(self, text: str) -> list[int]:
        if self._tokenizer is None:
            raise ValueError("prompt: a text prompt needs the tokenizer (Engine(..., tokenizer=True))")
        return self._tokenizer.encode(text)

    def decode(self, tokens: Sequence[int]) -> str:
        if self._tokenizer is None:
            raise ValueError("this engine was created with tokenizer=False")
        return self._tokenizer.decode(tokens)

    def _prompt_ids(self, prompt) -> list[int]:
        vocab = self.target_info["vocab_size"]
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("prompt must not be empty")
            ids = self.encode(prompt)
        elif isinstance(prompt, (list, tuple)) or (hasattr(prompt, "tolist") and not isinstance(prompt, bytes)):
            ids = _check_token_list("prompt", prompt.tolist() if hasattr(prompt, "tolist") else prompt, vocab)
        else:
            raise TypeError(f"prompt must be a str or a list of token ids, got {type(prompt).__name__}")
        if not ids:
            raise ValueError("prompt must hold at least one token")
        return ids

    def _result(self, tokens, reason, stats, text) -> GenerationOutput:
        return GenerationOutput(tokens=list(tokens), text=text, finish_reason=reason, stats=Stats.from_engine(stats))

    # ------------------------------------------------------------------------------------
    def generate(self, prompt, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int = 0, *, stop: str | Sequence[str] | None = None,
                 stop_token_ids: Sequence[int] | None = None, ignore_eos: bool = False, speculative: bool | None = None,
                 tree: Sequence[int] | None = None, callback: Callable[[list[int]], bool | None] | None = None,
                 text_callback: Callable[[str], bool | None] | None = None,
                 verify_nodes: int | None = None) -> GenerationOutput:
        """Generates after ``prompt`` (text or token ids).

        ``temperature=0`` is greedy. ``speculative=True`` / ``False`` forces the choice (an engine
        without a draft always decodes plainly); None, the default, decodes speculatively when a
        ``tree`` is given and otherwise as ``speculative_default`` says (plain on the CPU,
        ``tree="auto"`` on a GPU). ``tree``: a list of level widths, or ``"auto"`` (each round's
        shape, or a plain step, chosen from measured costs and this request's tau). Either way the output follows the target's own distribution
        (token-identical for greedy). ``verify_nodes=N`` (with a list ``tree``): grow the tree,
        verify only the root and its N nodes of highest cumulative draft probability (a subtree:
        deep where the draft is sure, wide where it is not; EAGLE-2's reranking), e.g.
        ``tree=[16, 32, 32, 32, 32], verify_nodes=69`` (without ``tree``: the engine's own tree). ``stop``: a string or list of strings; generation ends
        where one first appears in the text, ``out.text`` excludes it and ``finish_reason`` is
        "stop". ``callback(new_token_ids)`` is called as tokens are produced;
        ``text_callback(new_text)`` with the text that became final (stop strings never appear in
        it). Either returning False stops generation.
        """
        ids = self._prompt_ids(prompt)
        if verify_nodes is not None and tree is None:
            tree = self.tree  # pruning asks for speculation, and needs a fixed tree: the engine's own
        speculative = self.speculates(speculative, tree)
        if speculative and tree is None:
            tree = self._default_call_tree
        # Types are checked here, values by the engine when it starts (SamplingParams::Validate).
        params = _C.SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                   seed=seed, stop_token_ids=stop_token_ids, ignore_eos=ignore_eos,
                                   speculative=speculative, tree=tree, verify_nodes=verify_nodes)
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable or None")
        if text_callback is not None and not callable(text_callback):
            raise TypeError("text_callback must be callable or None")
        stops = check_stop_strings(stop)
        if (stops or text_callback is not None) and self._tokenizer is None:
            raise ValueError("stop strings and text_callback need the tokenizer (Engine(..., tokenizer=True))")
        if not stops and text_callback is None:
            tokens, reason, stats = self._engine.generate(ids, params, callback)
            return self._result(tokens, reason, stats,
                                self._tokenizer.decode(tokens) if self._tokenizer is not None else None)

        follow = TextStream(self._tokenizer.decode, stops)

        def on_tokens(new):
            keep_going = True if callback is None else callback(new)
            piece = follow.push(new)
            if piece and text_callback is not None:
                wanted = text_callback(piece)
                if wanted is not None and not isinstance(wanted, bool):
                    raise TypeError(f"text_callback must return a bool or None, got {type(wanted).__name__}")
                if wanted is False:
                    return False
            return False if follow.stopped else keep_going

        tokens, reason, stats = self._engine.generate(ids, params, on_tokens)
        tail = follow.finish()
        if tail and text_callback is not None:
            text_callback(tail)  # generation is over: what it returns no longer matters
        tokens = list(tokens)
        if follow.stopped:
            tokens, reason = tokens[:follow.token_count], "stop"
        return self._result(tokens, reason, stats, follow.text)

    def chat(self, messages: list[dict] | str, **kwargs) -> GenerationOutput:
        """Generates the assistant's reply to chat ``messages`` using the checkpoint's chat template."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise TypeError("messages must be a str or a list of {'role': ..., 'content': ...} dicts")
        if self._tokenizer is None:
            raise ValueError("messages: chat needs the tokenizer (Engine(..., tokenizer=True))")
        return self.generate(self._tokenizer.apply_chat_template(messages), **kwargs)

    def stream(self, prompt, **kwargs) -> Iterator[str]:
        """Yields the decoded text as it is generated (same arguments as ``generate``, ``stop``
        included; the pieces joined equal ``generate(...).text``).

        Closing the iterator (``break``, ``.close()``, or dropping it) stops generation within one
        callback and waits for it, so the engine is free again when the loop is left."""
        if self._tokenizer is None:
            raise ValueError("stream needs the tokenizer (Engine(..., tokenizer=True))")
        for name in ("callback", "text_callback"):
            if name in kwargs:
                raise TypeError(f"stream() takes no {name} (it uses its own)")
        ids = self._prompt_ids(prompt)
        pieces: queue.Queue = queue.Queue()
        done = object()
        outcome: dict = {}
        cancelled = threading.Event()

        def run():
            try:
                outcome["out"] = self.generate(ids, callback=lambda new: not cancelled.is_set(),
                                               text_callback=pieces.put, **kwargs)
            except BaseException as exc:  # re-raised in the consumer
                outcome["error"] = exc
            finally:
                pieces.put(done)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            while (piece := pieces.get()) is not done:
                yield piece
        finally:
            # Left early (GeneratorExit): the next callback tells the engine to stop.
            cancelled.set()
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        self.last_stream_output = outcome.get("out")

    def memory_plan(self) -> dict:
        """What this engine holds in memory, in bytes: the target's weights, its K/V cache per
        token and at the context limit (allocated up front), the draft's own weights and its ring
        buffer (constant in the context length).

        The K/V sizes are read from what the backend really allocates (its dtype differs by
        device): two one-token prompts are prefilled and the cache each commits is compared."""
        token = max(0, int(self.target_info.get("bos_token_id", 0)))

        def committed(n: int) -> int:
            out = self.generate([token] * n, max_new_tokens=1, ignore_eos=True, speculative=False)
            return int(out.stats["target_cache_bytes"])

        kv_per_token = committed(2) - committed(1)
        plan = {
            "device": self.device,
            "weights_bytes": int(self.target_info["parameter_bytes"]),
            "kv_bytes_per_token": kv_per_token,
            "context_limit": self.context_limit,
            "kv_bytes_at_context_limit": kv_per_token * self.context_limit,
            "draft_weights_bytes": 0,
            "draft_cache_bytes": 0,
        }
        if self.has_draft:
            plan["draft_weights_bytes"] = int(self.draft_info["parameter_bytes"])
            out = self.generate([token], max_new_tokens=2, ignore_eos=True, speculative=True, tree=[1])
            plan["draft_cache_bytes"] = int(out.stats["draft_cache_bytes"])
        plan["total_bytes_at_context_limit"] = (plan["weights_bytes"] + plan["kv_bytes_at_context_limit"]
                                                + plan["draft_weights_bytes"] + plan["draft_cache_bytes"])
        return plan

    def prompt_logits(self, prompt):
        """The target's logits (float32 numpy array, vocab_size) at the last prompt position."""
        return self._engine.prompt_logits(self._prompt_ids(prompt))

    def draft_logits(self, prompt, continuation):
        """The draft's logits (float32, [len(continuation), vocab]) for each continuation token fed
        after ``prompt``, as one speculation round rooted at ``continuation[0]`` computes them."""
        if not self.has_draft:
            raise ValueError("draft_logits needs an engine with a draft")
        cont = _check_token_list("continuation", continuation, self.target_info["vocab_size"])
        return self._engine.draft_logits(self._prompt_ids(prompt), cont)

    def __repr__(self) -> str:
        info = self.target_info
        draft = f", draft={self.draft_path!r}" if self.draft_path else ""
        return (f"Engine(target={self.target_path!r}{draft}, device={self.device!r}, "
                f"arch={info['architecture']}, layers={info['num_layers']}, hidden={info['hidden_size']})")
