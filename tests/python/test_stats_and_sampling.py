"""The typed result and settings objects: ``Stats`` (a documented object that is still the dict it
used to be) and ``SamplingParams`` (the one object that carries sampling settings into C++, where
they are converted and validated)."""
from __future__ import annotations

import copy
import json
import pickle

import pytest

import longspec
from longspec import Engine, SamplingParams, Stats, _C

PROMPT = [5, 17, 99, 3, 250, 7]


@pytest.fixture(scope="module")
def eng(random_qwen2_dir):
    return Engine(random_qwen2_dir, draft="oracle", device="cpu", tokenizer=False)


def test_stats_is_typed_and_still_a_dict(eng):
    out = eng.generate(PROMPT, max_new_tokens=10, ignore_eos=True, tree=[1, 1])  # 1 + 3 rounds of 3
    s = out.stats
    assert isinstance(s, Stats) and isinstance(s, dict)
    assert tuple(s) == Stats.FIELDS and list(s.keys()) == list(Stats.FIELDS)
    for name in Stats.FIELDS:
        assert getattr(s, name) == s[name] == s.get(name)
        assert getattr(Stats, name).__doc__, f"Stats.{name} has no documentation"
    assert s.new_tokens == 10 and s.speculative and s.rounds > 0
    assert s.mean_accepted == 3.0  # the oracle draft accepts a whole 2-deep chain every round
    assert sum(s.accepted_histogram) == s.rounds
    plain = dict(s)
    assert type(plain) is dict and plain == s
    assert json.loads(json.dumps(s)) == plain  # `longspec generate --stats-json` prints it so
    assert pickle.loads(pickle.dumps(s)) == s and copy.deepcopy(s) == s
    with pytest.raises(AttributeError, match="read-only"):
        s.tokens_per_s = 1.0


def test_stats_keys_are_exactly_the_engines(eng):
    raw = eng._engine.generate(PROMPT, SamplingParams(max_new_tokens=2), None)[2]
    assert sorted(raw) == sorted(Stats.FIELDS)
    with pytest.raises(RuntimeError, match="unexpected"):
        Stats.from_engine({**raw, "new_field": 1})
    with pytest.raises(RuntimeError, match="missing"):
        Stats.from_engine({k: v for k, v in raw.items() if k != "rounds"})


def test_sampling_params_fields_and_defaults():
    p = SamplingParams()
    assert (p.max_new_tokens, p.temperature, p.top_p, p.top_k, p.seed) == (64, 0.0, 1.0, 0, 0)
    assert p.stop_token_ids == [] and p.ignore_eos is False and p.speculative is True and p.tree is None
    p = SamplingParams(max_new_tokens=3, temperature=0.5, top_p=0.9, top_k=7, seed=2 ** 64 - 1,
                       stop_token_ids=(4, 5), ignore_eos=True, speculative=False, tree=[2, 2])
    assert (p.max_new_tokens, p.top_k, p.seed, p.stop_token_ids, p.tree) == (3, 7, 2 ** 64 - 1, [4, 5], [2, 2])
    assert p.temperature == pytest.approx(0.5) and p.top_p == pytest.approx(0.9)
    p.tree = None
    p.stop_token_ids = None
    assert p.tree is None and p.stop_token_ids == []
    assert repr(p).startswith("SamplingParams(max_new_tokens=3, temperature=0.5")
    assert longspec.SamplingParams is _C.SamplingParams


@pytest.mark.parametrize("field,value,exc", [
    ("max_new_tokens", 2.5, TypeError), ("top_k", "3", TypeError), ("temperature", None, TypeError),
    ("speculative", 1, TypeError), ("stop_token_ids", "ab", TypeError), ("tree", 4, TypeError),
    ("seed", -1, ValueError), ("max_new_tokens", 2 ** 31, ValueError), ("tree", [], ValueError),
    ("stop_token_ids", [2 ** 31], ValueError),
])
def test_sampling_params_conversion_errors_name_the_field(field, value, exc):
    with pytest.raises(exc, match=field):
        SamplingParams(**{field: value})
    p = SamplingParams()
    with pytest.raises(exc, match=field):
        setattr(p, field, value)
    with pytest.raises(TypeError, match="no field 'temprature'"):
        SamplingParams(temprature=0.5)


@pytest.mark.parametrize("field,value", [
    ("max_new_tokens", -1), ("temperature", -0.5), ("temperature", float("inf")), ("temperature", float("nan")),
    ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1), ("stop_token_ids", [-3]), ("tree", [4, 0]), ("tree", [1] * 33),
])
def test_values_are_validated_once_in_cpp(eng, field, value):
    """A value of the right type but outside its domain is accepted by the object and refused by
    SamplingParams::Validate, from validate() and from the engine alike, with the C++ code."""
    p = SamplingParams(**{field: value})
    with pytest.raises(ValueError, match=field.split("_")[0]) as info:
        p.validate()
    assert info.value.status_code == "INVALID_ARGUMENT"
    with pytest.raises(ValueError, match=field.split("_")[0]) as info:
        eng.generate(PROMPT, **{field: value})
    assert info.value.status_code == "INVALID_ARGUMENT"
    SamplingParams().validate()  # the defaults are valid


def test_the_engine_takes_the_object_as_given(eng):
    p = SamplingParams(max_new_tokens=7, ignore_eos=True, speculative=False)
    tokens, reason, _ = eng._engine.generate(PROMPT, p, None)
    assert tokens == eng.generate(PROMPT, max_new_tokens=7, ignore_eos=True, speculative=False).tokens
    assert reason == "length"
