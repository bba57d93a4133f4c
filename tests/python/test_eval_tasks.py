"""eval-draft's two task shapes (LongBench-style): raw continuation of a document, and the document
plus an instruction in one user turn of the chat template."""
from __future__ import annotations

import numpy as np
import pytest

from longspec.training.cli import INSTRUCTIONS, evaluate_tau, instruction_for, instruction_prompt

TEXT = ("The parser reads one record at a time and keeps a small window of lookahead. When a record "
        "ends early, it reports the byte offset and the field it expected, then resynchronises on the "
        "next newline. ") * 40


@pytest.fixture(scope="module")
def chat_engine(tiny_chat_model_dir):
    from longspec import Engine

    return Engine(tiny_chat_model_dir, draft="oracle", device="cpu")


def test_instruction_follows_the_documents_kind():
    assert instruction_for("code/librust-syn-dev/src/item.rs") == INSTRUCTIONS["code"]
    assert instruction_for("stdlib/json/decoder.py") == INSTRUCTIONS["code"]
    assert instruction_for("man/unshare.1") == INSTRUCTIONS["prose"]
    assert instruction_for("info/wget") == INSTRUCTIONS["prose"]


@pytest.mark.parametrize("ctx", [64, 300, 700])
def test_instruction_prompt_is_one_user_turn_within_the_context(chat_engine, ctx):
    tok = chat_engine.tokenizer
    doc = np.asarray(tok.encode(TEXT), dtype=np.uint32)
    assert len(doc) > ctx
    ids = instruction_prompt(tok, doc, ctx, INSTRUCTIONS["prose"])
    # The budget is used: at most ctx tokens, and only the re-encoding slack below it.
    assert ctx - 24 <= len(ids) <= ctx
    # The template's own wrapping of a user turn (what two different turns share at each end), the
    # document's start, then the instruction last.
    a = tok.apply_chat_template([{"role": "user", "content": "apple"}])
    b = tok.apply_chat_template([{"role": "user", "content": "kiwi"}])
    head = next(i for i in range(min(len(a), len(b))) if a[i] != b[i])
    tail = next(i for i in range(1, min(len(a), len(b))) if a[-i] != b[-i]) - 1
    assert head > 0 and tail > 0
    assert ids[:head] == a[:head] and ids[-tail:] == a[-tail:]
    text = tok.decode(ids)
    start = tok.decode(doc[:12].tolist())
    assert start in text
    assert text.rfind(INSTRUCTIONS["prose"]) > text.find(start)


def test_instruction_prompt_too_small_a_context_is_a_clear_error(chat_engine):
    tok = chat_engine.tokenizer
    doc = np.asarray(tok.encode(TEXT), dtype=np.uint32)
    with pytest.raises(ValueError, match="exceed 8 tokens"):
        instruction_prompt(tok, doc, 8, INSTRUCTIONS["prose"])


def test_evaluate_tau_runs_both_task_shapes(chat_engine):
    tok = chat_engine.tokenizer
    docs = [("man/doc.1", np.asarray(tok.encode(TEXT), dtype=np.uint32)),
            ("stdlib/mod.py", np.asarray(tok.encode("def f(x):\n    return x + 1\n" * 60), dtype=np.uint32))]
    rows = {}
    for task in ("continuation", "instruction"):
        (row,) = evaluate_tau(chat_engine, docs, [200], [[1, 1, 1]], n_docs=2, new_tokens=12, task=task)
        assert row["task"] == task and row["docs"] == 2 and row["context"] == 200
        # The pooled histogram counts every round once and every emitted token once.
        hist = row["accepted_histogram"]
        assert len(hist) == 5 and sum(hist) == row["rounds"]
        assert sum(k * n for k, n in enumerate(hist)) == sum(d["new_tokens"] for d in row["per_doc"])
        rows[task] = row
    # Continuations are the documents' first tokens, exactly; instruction prompts fit the same budget
    # but differ from them (they start with the template).
    assert [d["prompt_tokens"] for d in rows["continuation"]["per_doc"]] == [200, 200]
    assert all(180 <= d["prompt_tokens"] <= 200 for d in rows["instruction"]["per_doc"])
    # The oracle draft (the target drafting for itself) accepts the whole chain: tau = depth + 1,
    # except where a continuation hits its token budget or an answer its EOS mid-round.
    assert rows["continuation"]["tau"] > 3.0
    for d in rows["instruction"]["per_doc"]:
        assert d["new_tokens"] >= 1


def test_evaluate_tau_reports_the_best_n_probe(tiny_chat_model_dir, tmp_path, monkeypatch):
    # With a LongSpec draft (random here) and LONGSPEC_BEST_N_PROBE, each row carries the tau the
    # rounds would have reached verifying only their N best nodes: the whole tree's N gives tau.
    import longspec
    from longspec import Engine

    draft = longspec.random_draft(tiny_chat_model_dir, tmp_path / "draft", seed=3)
    eng = Engine(tiny_chat_model_dir, draft=draft, device="cpu")
    doc = np.asarray(eng.encode(TEXT), dtype=np.uint32)
    monkeypatch.setenv("LONGSPEC_BEST_N_PROBE", "1,7")
    (row,) = evaluate_tau(eng, [("man/doc.1", doc)], [200], [[2, 2, 2]], n_docs=1, new_tokens=16)
    assert row["tau_best_n"]["7"] == pytest.approx(row["tau"])
    assert row["tau_best_n"]["1"] == pytest.approx(1.0)
    monkeypatch.delenv("LONGSPEC_BEST_N_PROBE")
    (plain_row,) = evaluate_tau(eng, [("man/doc.1", doc)], [200], [[2, 2, 2]], n_docs=1, new_tokens=16)
    assert "tau_best_n" not in plain_row and plain_row["tau"] == pytest.approx(row["tau"])


def test_tree_specs_with_verify_nodes_parse_and_evaluate(tiny_chat_model_dir, tmp_path):
    # "W1,W2,...@N" (eval-draft --trees, bench_gpu.py --extra-trees): grow the tree, verify its best
    # N nodes; the row says so, and N covering the whole tree is the tree itself.
    import longspec
    from longspec import Engine
    from longspec.engine import format_tree_spec, parse_tree_spec

    assert parse_tree_spec("16,32,32,32,32@69") == ([16, 32, 32, 32, 32], 69)
    assert parse_tree_spec(" 4,16 ") == ([4, 16], None)
    assert format_tree_spec([16, 32], 40) == "16,32@40" and format_tree_spec([4, 16]) == "4,16"
    for bad in ("", "4,x", "4,16@", "4,16@0", "0,4", "4@16@2"):
        with pytest.raises(ValueError, match="tree"):
            parse_tree_spec(bad)
    draft = longspec.random_draft(tiny_chat_model_dir, tmp_path / "draft", seed=3)
    eng = Engine(tiny_chat_model_dir, draft=draft, device="cpu")
    doc = np.asarray(eng.encode(TEXT), dtype=np.uint32)
    whole, pruned, all_kept = evaluate_tau(eng, [("man/doc.1", doc)], [200], [[2, 2, 2], ([2, 2, 2], 2), ([2, 2, 2], 6)],
                                           n_docs=1, new_tokens=16)
    assert whole["verify_nodes"] is None and pruned["verify_nodes"] == 2
    assert pruned["tree"] == [2, 2, 2] and 1.0 <= pruned["tau"] <= 3.0  # at most root + 2 nodes deep
    assert all_kept["tau"] == pytest.approx(whole["tau"]) and all_kept["rounds"] == whole["rounds"]
