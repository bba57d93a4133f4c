"""Plain or speculative when the caller does not say: plain on the CPU (where plain measured
fastest), the draft's tree on a GPU; an explicit tree or ``speculative=`` always wins, in Python,
in the CLI and in the server's settings."""
from __future__ import annotations

import json

import pytest

from longspec import Engine, cli, random_draft

IDS = [5, 6, 7, 8]


@pytest.fixture(scope="module")
def draft(random_qwen2_dir, tmp_path_factory):
    return random_draft(random_qwen2_dir, tmp_path_factory.mktemp("default_draft"), seed=4, window=32)


@pytest.fixture(scope="module")
def cpu(random_qwen2_dir, draft):
    return Engine(random_qwen2_dir, draft=draft, device="cpu", tokenizer=False)


def _speculative(eng, **kw) -> bool:
    return eng.generate(IDS, max_new_tokens=6, ignore_eos=True, **kw).stats["speculative"]


def test_cpu_default_is_plain_and_explicit_choices_are_honoured(cpu):
    assert cpu.has_draft and not cpu.speculative_default
    assert cpu.tree == [4, 16, 16, 16, 16]  # the draft's tree is still there for who asks
    assert not _speculative(cpu)
    assert _speculative(cpu, tree=[1, 1])
    assert _speculative(cpu, speculative=True)
    assert not _speculative(cpu, speculative=False, tree=[1, 1])
    assert cpu.speculates() is False and cpu.speculates(tree=[2]) is True
    plain = cpu.generate(IDS, max_new_tokens=12, ignore_eos=True).tokens
    assert cpu.generate(IDS, max_new_tokens=12, ignore_eos=True, speculative=True).tokens == plain
    with pytest.raises(TypeError, match="speculative"):
        cpu.generate(IDS, speculative="yes")


def test_a_tree_given_to_the_engine_makes_the_cpu_default_speculative(random_qwen2_dir, draft):
    eng = Engine(random_qwen2_dir, draft=draft, device="cpu", tokenizer=False, tree=[1, 1, 1])
    assert eng.speculative_default and _speculative(eng)
    assert not _speculative(eng, speculative=False)


def test_gpu_default_is_the_drafts_tree(cpu, monkeypatch):
    # The choice is made in Python from the device name; a GPU engine's own run is in test_gpu.py.
    monkeypatch.setattr(Engine, "device", property(lambda self: "cuda"))
    assert cpu.speculative_default and cpu.speculates()
    out = cpu.generate(IDS, max_new_tokens=6, ignore_eos=True)
    assert out.stats["speculative"] and len(out.stats["accepted_histogram"]) == 7  # 0..6 of depth 5
    assert not _speculative(cpu, speculative=False)


def test_no_draft_never_speculates(random_qwen2_dir):
    eng = Engine(random_qwen2_dir, draft=None, device="cpu", tokenizer=False)
    assert not eng.speculative_default and not eng.speculates(True, [1])
    assert not _speculative(eng, tree=[1, 1]) and not _speculative(eng, speculative=True)


def test_cli_generate_default_and_flags(tiny_chat_model_dir, tmp_path_factory, capsys):
    draft = random_draft(tiny_chat_model_dir, tmp_path_factory.mktemp("cli_draft"), seed=5, window=32)
    base = ["generate", "Hello", "--target", tiny_chat_model_dir, "--draft", draft, "--device", "cpu",
            "--max-new-tokens", "4", "--stats-json"]

    def stats(*extra) -> dict:
        assert cli.main(base + list(extra)) == 0
        return json.loads(capsys.readouterr().err.strip().splitlines()[-1])

    assert stats()["speculative"] is False
    assert stats("--speculative")["speculative"] is True
    assert stats("--tree", "1,1")["speculative"] is True
    assert stats("--tree", "1,1", "--no-speculative")["speculative"] is False
    with pytest.raises(SystemExit):
        cli.main(base + ["--speculative", "--no-speculative"])
    capsys.readouterr()


def test_help_says_what_the_default_is(capsys):
    for command in ("generate", "serve"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "plain on the CPU" in text and "--speculative" in text and "--no-speculative" in text
