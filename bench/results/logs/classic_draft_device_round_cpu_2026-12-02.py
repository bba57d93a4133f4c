# CPU timing of the classic two-model draft (Qwen2.5-Coder-0.5B drafting for the 1.5B) with the
# package on PYTHONPATH: plain and speculative ms per token, tau, tokens equal to plain.
import json, sys, time
import numpy as np
from longspec import Engine
label = sys.argv[1]
eng = Engine("/tmp/qwen15.gguf", draft="/tmp/qwen05.gguf", device="cpu", tokenizer=False, max_context=4096)
rng = np.random.default_rng(3)
text = open("/work/main/python/longspec/engine.py").read()
# a real code prompt: the engine's own source as bytes mapped into the vocabulary's low ids would be noise;
# use the Qwen tokenizer if available, else random ids
try:
    from tokenizers import Tokenizer
    raise ImportError
except ImportError:
    ids = rng.integers(100, 5000, size=300).tolist()
out = {"label": label}
t = time.time(); plain = eng.generate(ids, max_new_tokens=32, ignore_eos=True, speculative=False); out["plain_s"] = time.time() - t
for tree in ([4, 4], [1, 1, 1], [2, 2, 2]):
    t = time.time(); spec = eng.generate(ids, max_new_tokens=32, ignore_eos=True, tree=tree); dt = time.time() - t
    out[str(tree)] = {"s": round(dt, 2), "tau": spec.stats["mean_accepted"], "same": spec.tokens == plain.tokens,
                      "draft_s": round(spec.stats.get("draft_s", 0), 2), "verify_s": round(spec.stats.get("verify_s", 0), 2)}
print(json.dumps(out))
