"""``longspec serve`` as a client sees it: a real server process on loopback, driven by the
official ``openai`` client (and httpx where the raw HTTP matters).

The served model is a small random Qwen2 with SmolLM2's tokenizer and a random draft (speculative
greedy gives the same tokens as plain greedy, so the in-process plain engine is the reference).
A long generation takes seconds, so tests can act while one is running."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from longspec import Engine, random_draft

MODEL = "tiny"
PROMPTS = ["The sea at night", "A list of prime numbers:"]
LONG = 3000  # tokens: ~15 s of generation, far longer than any test waits


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ref(tiny_chat_model_dir):
    return Engine(tiny_chat_model_dir, draft=None, device="cpu")


@pytest.fixture(scope="module")
def server(tiny_chat_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    draft = random_draft(tiny_chat_model_dir, str(tmp / "draft"), seed=3)
    port = _free_port()
    log = open(tmp / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "longspec", "serve", "--target", tiny_chat_model_dir, "--draft",
                             draft, "--device", "cpu", "--tree", "1,1", "--port", str(port), "--max-queue", "1",
                             "--served-model-name", MODEL, "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail("the server did not start:\n" + log.read()[-4000:])
        time.sleep(0.2)
    yield base
    proc.terminate()  # SIGTERM: uvicorn shuts down, the engine worker stops
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = "hung"
    log.seek(0)
    text = log.read()
    # uvicorn re-raises the signal it caught once it has shut down, so -SIGTERM is a clean exit.
    assert code in (0, -signal.SIGTERM) and "Traceback" not in text, (code, text[-4000:])


def _client(base: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120, **kw)


def _metric(base: str, name: str, **labels) -> float:
    text = httpx.get(base + "/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m, f"{name} {labels} not in /metrics"
    return float(m.group(1))


GREEDY = dict(temperature=0, extra_body={"ignore_eos": True})


def test_models_health_and_metrics(server):
    models = _client(server).models.list()
    assert [m.id for m in models.data] == [MODEL]
    health = httpx.get(server + "/health").json()
    assert health["status"] == "ok" and health["queue_depth"] == 0 and health["max_queue"] == 1
    text = httpx.get(server + "/metrics").text
    for name in ("longspec_requests_total", "longspec_generation_tokens_total", "longspec_mean_accepted_tokens",
                 "longspec_queue_depth", "longspec_last_request_tokens_per_second", "longspec_requests_running"):
        assert name in text


def test_completion_equals_plain_greedy(server, ref):
    want = ref.generate(PROMPTS[0], max_new_tokens=16, ignore_eos=True)
    before = _metric(server, "longspec_speculative_rounds_total")
    got = _client(server).completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=16, **GREEDY)
    assert got.object == "text_completion" and got.model == MODEL
    assert got.choices[0].text == want.text and got.choices[0].finish_reason == "length"
    assert got.usage.completion_tokens == 16 and got.usage.prompt_tokens == len(ref.encode(PROMPTS[0]))
    assert got.usage.total_tokens == got.usage.prompt_tokens + 16
    # The draft is used, and tau (>= 1 token a round) is exported.
    assert _metric(server, "longspec_speculative_rounds_total") > before
    assert _metric(server, "longspec_mean_accepted_tokens") >= 1.0
    # Token ids as the prompt.
    ids = _client(server).completions.create(model=MODEL, prompt=ref.encode(PROMPTS[0]), max_tokens=16, **GREEDY)
    assert ids.choices[0].text == want.text


def test_chat_full_and_streamed(server, ref):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    want = ref.chat(messages, max_new_tokens=12, ignore_eos=True)
    client = _client(server)
    full = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, **GREEDY)
    assert full.object == "chat.completion"
    assert full.choices[0].message.role == "assistant" and full.choices[0].message.content == want.text
    assert full.usage.completion_tokens == 12 and full.usage.prompt_tokens == want.stats["prompt_tokens"]
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}, **GREEDY))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    # A streamed completion, and the raw SSE ends with the [DONE] terminator.
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt=PROMPTS[1], max_tokens=10, stream=True, **GREEDY))
    assert text == ref.generate(PROMPTS[1], max_new_tokens=10, ignore_eos=True).text
    raw = httpx.post(server + "/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2,
                                                       "stream": True}, timeout=60)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_stop_strings_and_seeded_sampling(server, ref):
    plain = ref.generate(PROMPTS[0], max_new_tokens=30, ignore_eos=True).text
    stop = plain[12:16]
    client = _client(server)
    got = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=30, stop=["\x00", stop], **GREEDY)
    assert got.choices[0].text == plain[:plain.index(stop)] and got.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt=PROMPTS[0], max_tokens=30, stop=stop, stream=True, **GREEDY))
    assert streamed == got.choices[0].text
    sampled = [client.completions.create(model=MODEL, prompt=PROMPTS[1], max_tokens=12, temperature=0.9, top_p=0.95,
                                         seed=s).choices[0].text for s in (7, 7, 8)]
    assert sampled[0] == sampled[1] != sampled[2]


@pytest.mark.parametrize("body,param", [
    ({"n": 2}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": 5}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"stop": [""]}, "stop"),
    ({"logprobs": 2}, "logprobs"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"max_tokenz": 3}, "max_tokenz"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": [1, 10 ** 9]}, None),   # the engine's check: outside the vocabulary
    ({"prompt": "word " * 5000}, None),  # longer than the model's context
])
def test_bad_completion_requests_are_400_in_openai_shape(server, body, param):
    r = httpx.post(server + "/v1/completions", json={"model": MODEL, "prompt": "hi", **body}, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert err["param"] == param and err["message"]


def test_bad_requests_through_the_openai_client(server):
    client = _client(server)
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4", prompt="hi")
    r = httpx.post(server + "/v1/chat/completions", content=b"{not json", timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert _client(server).completions.create(model=MODEL, prompt="hi", max_tokens=2).usage.completion_tokens >= 1


def test_a_client_that_leaves_stops_its_generation(server, ref):
    want = ref.generate(PROMPTS[1], max_new_tokens=16, ignore_eos=True).text
    cancelled = _metric(server, "longspec_requests_total", endpoint="completions", outcome="cancelled")
    tokens = _metric(server, "longspec_generation_tokens_total")
    client = _client(server)
    stream = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=LONG, stream=True, **GREEDY)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    # Without streaming: the client gives up (timeout) and closes the connection.
    with pytest.raises(httpx.TimeoutException):
        httpx.post(server + "/v1/completions", json={"model": MODEL, "prompt": PROMPTS[0], "max_tokens": LONG,
                                                     "temperature": 0, "ignore_eos": True}, timeout=1.5)
    started = time.time()
    got = client.completions.create(model=MODEL, prompt=PROMPTS[1], max_tokens=16, **GREEDY)
    assert got.choices[0].text == want  # the engine is free and exact again
    assert time.time() - started < 10   # not behind 2 x 3000 tokens
    assert _metric(server, "longspec_requests_total", endpoint="completions", outcome="cancelled") == cancelled + 2
    assert _metric(server, "longspec_generation_tokens_total") - tokens < LONG


def test_two_concurrent_clients_get_their_sequential_outputs(server, ref):
    want = [ref.generate(p, max_new_tokens=20, ignore_eos=True).text for p in PROMPTS]
    got: dict = {}

    def worker(i):
        client = _client(server)
        got[i] = [client.completions.create(model=MODEL, prompt=PROMPTS[i], max_tokens=20, **GREEDY).choices[0].text
                  for _ in range(2)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == {0: [want[0]] * 2, 1: [want[1]] * 2}


def test_past_the_queue_limit_the_answer_is_503(server, ref):
    client = _client(server)
    rejected = _metric(server, "longspec_requests_total", endpoint="chat", outcome="rejected")
    running = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=LONG, stream=True, **GREEDY)
    next(iter(running))  # it generates now
    queued: dict = {}
    waiter = threading.Thread(target=lambda: queued.setdefault("out", client.completions.create(
        model=MODEL, prompt=PROMPTS[1], max_tokens=16, **GREEDY)))
    waiter.start()
    deadline = time.time() + 30
    while httpx.get(server + "/health").json()["queue_depth"] < 1:
        assert time.time() < deadline, "the second request never queued"
        time.sleep(0.05)
    assert _metric(server, "longspec_queue_depth") == 1
    with pytest.raises(openai.InternalServerError) as info:  # 503 (max_retries=0: no retry)
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert info.value.status_code == 503 and "busy" in str(info.value)
    assert info.value.response.json()["error"]["code"] == "queue_full"
    assert info.value.response.headers.get("retry-after") == "1"
    running.close()
    waiter.join(timeout=60)
    assert queued["out"].choices[0].text == ref.generate(PROMPTS[1], max_new_tokens=16, ignore_eos=True).text
    assert _metric(server, "longspec_requests_total", endpoint="chat", outcome="rejected") == rejected + 1


def test_core_import_does_not_need_the_server_stack():
    code = "import sys, longspec; assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_serve_without_the_extra_says_how_to_get_it():
    code = ("import sys; sys.modules['fastapi'] = None  # as if not installed\n"
            "from longspec.cli import main\n"
            "sys.exit(main(['serve', '--target', 'unused']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'pip install "longspec[serve]"' in r.stderr
