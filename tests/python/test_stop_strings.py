"""Stop strings in generate / stream / chat: the text ends just before the first stop string,
no piece of a stream ever shows part of one, and the tokens end with the one that completed it."""
from __future__ import annotations

import pytest

from longspec import Engine
from longspec.text_stream import TextStream, check_stop_strings

PROMPT = "Hello there, how are you"


def _char_decoder(vocab):
    return lambda ids: "".join(vocab[i] for i in ids)


def test_text_stream_holds_back_what_may_start_a_stop_string():
    vocab = ["x", "a", "b", "c", "d", "ab", "cx"]
    ts = TextStream(_char_decoder(vocab), ["abc"])
    assert ts.push([0]) == "x"
    assert ts.push([1]) == ""           # "a" might start "abc"
    assert ts.push([2]) == ""           # "ab" too
    assert ts.push([4]) == "abd"        # not a stop after all: released
    assert ts.push([5, 6, 0]) == ""     # "ab" + "cx" completes "abc" inside the chunk
    assert ts.stopped and ts.text == "xabd" and ts.token_count == 6  # the later "x" token is dropped
    assert ts.push([0]) == "" and ts.finish() == ""


def test_text_stream_releases_held_text_at_the_end_and_waits_for_whole_characters():
    ts = TextStream(_char_decoder(["q", "s", "t"]), ["st", "zz"])
    assert ts.push([0, 1]) == "q"
    assert ts.finish() == "s" and not ts.stopped and ts.text == "qs" and ts.token_count == 2
    partial = TextStream(lambda ids: "é" if len(ids) >= 2 else ("\ufffd" if ids else ""))
    assert partial.push([7]) == ""       # half a character: wait
    assert partial.push([8]) == "é"


@pytest.mark.parametrize("stop,exc", [(3, TypeError), ([""], ValueError), (["a", 1], TypeError),
                                      (["s"] * 17, ValueError), (b"x", TypeError)])
def test_bad_stop_arguments_name_stop(stop, exc):
    with pytest.raises(exc, match="stop"):
        check_stop_strings(stop)


@pytest.fixture(scope="module")
def tiny(tiny_chat_model_dir):
    return Engine(tiny_chat_model_dir, draft=None, device="cpu")


def test_generate_stream_and_chat_stop_at_a_stop_string(tiny):
    ref = tiny.generate(PROMPT, max_new_tokens=40, ignore_eos=True)
    assert len(ref.text) > 30
    stop = ref.text[20:26]
    cut = ref.text.index(stop)
    out = tiny.generate(PROMPT, max_new_tokens=40, ignore_eos=True, stop=["never appears", stop])
    assert out.finish_reason == "stop" and out.text == ref.text[:cut]
    assert out.tokens == ref.tokens[:len(out.tokens)]
    assert stop in tiny.decode(out.tokens) and stop not in tiny.decode(out.tokens[:-1])
    pieces = list(tiny.stream(PROMPT, max_new_tokens=40, ignore_eos=True, stop=stop))
    assert "".join(pieces) == out.text and tiny.last_stream_output.finish_reason == "stop"
    # A stop string that never appears changes nothing.
    same = tiny.generate(PROMPT, max_new_tokens=40, ignore_eos=True, stop="\x00never\x00")
    assert same.tokens == ref.tokens and same.text == ref.text and same.finish_reason == "length"
    chat_ref = tiny.chat("Hi", max_new_tokens=30, ignore_eos=True)
    chat_stop = chat_ref.text[10:14]
    chat = tiny.chat("Hi", max_new_tokens=30, ignore_eos=True, stop=chat_stop)
    assert chat.text == chat_ref.text[:chat_ref.text.index(chat_stop)] and chat.finish_reason == "stop"


def test_text_callback_sees_the_text_and_can_stop(tiny):
    ref = tiny.generate(PROMPT, max_new_tokens=30, ignore_eos=True)
    seen = []
    out = tiny.generate(PROMPT, max_new_tokens=30, ignore_eos=True, text_callback=seen.append)
    assert "".join(seen) == out.text == ref.text
    seen.clear()

    def first_piece_only(piece):
        seen.append(piece)
        return False

    out = tiny.generate(PROMPT, max_new_tokens=30, ignore_eos=True, text_callback=first_piece_only)
    assert len(seen) == 1 and len(out.tokens) < 30
    with pytest.raises(TypeError, match="text_callback must return"):
        tiny.generate(PROMPT, max_new_tokens=5, text_callback=lambda t: "yes")
    with pytest.raises(TypeError, match="callback"):
        list(tiny.stream(PROMPT, callback=lambda new: True))
    assert tiny.generate(PROMPT, max_new_tokens=30, ignore_eos=True).tokens == ref.tokens


def test_stop_strings_need_the_tokenizer(random_qwen2_dir):
    eng = Engine(random_qwen2_dir, draft=None, device="cpu", tokenizer=False)
    with pytest.raises(ValueError, match="tokenizer"):
        eng.generate([1, 2, 3], stop="x")
