"""Shared fixtures: the two packaged real models, plain-transformers references, repo data."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "skythought"
# The lab's outputs and the app's demo corpus (RDPT_DEMO_DIR lets a developer point the app and
# these tests elsewhere).
LAB = Path(os.environ.get("RDPT_DEMO_DIR", REPO / "demo" / "steps"))
DEMO = LAB / "corpus"


# Property tests check results, not speed: no per-example deadline (a loaded 2-core CI box ran
# one example past hypothesis' 200 ms default and failed a correct test as flaky).
settings.register_profile("rdpt", deadline=None)
settings.load_profile("rdpt")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's token cache or saved datasets, and never wait on the
    hub (CI has none): a hub id resolves from the local cache or fails at once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["RDPT_CACHE_DIR"] = str(tmp_path_factory.mktemp("token-cache"))
    os.environ["RDPT_WORKSPACE_DIR"] = str(tmp_path_factory.mktemp("workspace"))


def skythought_rows(name: str) -> list[dict]:
    with (DATA / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


PAPER = r"([.?!}\]])([\s\n]+)([A-Z])"


def reference_spans(response: str, markers: list[str]) -> list[tuple[int, int]]:
    """docs/method.md §2 written the naive way: split out markers, mark sentence ends with re.sub,
    then hand whitespace-only pieces to the following piece (or the preceding one at the end)."""
    alternation = "(" + "|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True)) + ")"
    pieces = []
    for part in re.split(alternation, response):
        if part in markers:
            pieces.append(part)
        elif part:
            pieces += [p for p in re.sub(PAPER, "\\1\x00\\2\\3", part).split("\x00") if p]
    merged, carry = [], ""
    for p in pieces:
        if p.isspace() and p not in markers:
            carry += p
        else:
            merged.append(carry + p)
            carry = ""
    if carry:
        if merged:
            merged[-1] += carry
        else:
            merged.append(carry)
    spans, pos = [], 0
    for text in merged:
        spans.append((pos, pos + len(text)))
        pos += len(text)
    return spans


def _prepared(name: str):
    from rdpt_core.models import resolve_spec

    try:
        return resolve_spec(name)
    except FileNotFoundError as err:  # a clear failure, not a skip: CI must run these
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def smollm2_spec():
    return _prepared("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma_spec():
    return _prepared("gemma3-270m")


@pytest.fixture(scope="session")
def smollm2(smollm2_spec):
    from rdpt_core.backends import create_backend

    backend = create_backend(smollm2_spec)
    yield backend
    backend.unload()


@pytest.fixture(scope="session")
def gemma(gemma_spec):
    from rdpt_core.backends import create_backend

    backend = create_backend(gemma_spec)
    yield backend
    backend.unload()


class Reference:
    """Expected numbers computed the plain way: one full forward pass, a full log-softmax, and
    a character-count loop for the token → action rule. Shares no code with rdpt_core."""

    def __init__(self, path: str, adapter: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        if adapter is not None:  # a LoRA on the base: peft's own merge
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload().eval()

    def context(self, prompt: str) -> str:
        """docs/method.md §3 the plain way: the chat template when there is one, else "{prompt}\\n\\n"."""
        if self.tok.chat_template:
            return self.tok.apply_chat_template([{"role": "user", "content": prompt}],
                                                add_generation_prompt=True, tokenize=False)
        return f"{prompt}\n\n"

    def token_logprobs(self, context: str, response: str):
        """ids, offsets into context+response, logp per id (None for the first), BOS added?"""
        import torch

        # add_special_tokens=True: the tokenizer adds its own BOS (Gemma) or nothing (SmolLM2);
        # a context that already starts with the BOS text must not get a second one.
        add = not (self.tok.bos_token and context.startswith(self.tok.bos_token))
        enc = self.tok(context + response, add_special_tokens=add, return_offsets_mapping=True)
        ids = enc.input_ids
        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        per_token = [None] + [logp[i - 1, ids[i]].item() for i in range(1, len(ids))]
        bos_added = add and bool(ids) and ids[0] == self.tok.bos_token_id
        return ids, enc.offset_mapping, per_token, bos_added

    def action_probs(self, context: str, response: str, spans: list[tuple[int, int]]):
        ids, offsets, logps, bos_added = self.token_logprobs(context, response)
        owner = [None] * len(response)
        for k, (a, b) in enumerate(spans):
            for c in range(a, b):
                owner[c] = k
        c0 = len(context)
        assigned: list[int | None] = []
        for i, (s, e) in enumerate(offsets):
            if (i == 0 and bos_added) or e < c0 or (e == c0 and s < e):
                assigned.append(None)  # the BOS or a context token
            elif s < c0:
                assigned.append(0)  # straddles the seam
            elif s == e:
                assigned.append(-1)  # zero width: decided below
            else:
                counts = Counter(owner[s - c0 : e - c0])
                best = max(counts.values())
                assigned.append(min(k for k, v in counts.items() if v == best))
        for i in range(len(assigned) - 1, -1, -1):
            if assigned[i] == -1:
                assigned[i] = assigned[i + 1] if i + 1 < len(assigned) else len(spans) - 1
        sums = [0.0] * len(spans)
        counts = [0] * len(spans)
        for k, lp in zip(assigned, logps):
            if k is not None and lp is not None:
                sums[k] += lp
                counts[k] += 1
        import math

        return [math.exp(s / n) if n else float("nan") for s, n in zip(sums, counts)], counts


@pytest.fixture(scope="session")
def smollm2_ref(smollm2_spec):
    return Reference(smollm2_spec.path)


@pytest.fixture(scope="session")
def gemma_ref(gemma_spec):
    return Reference(gemma_spec.path)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, smollm2_spec) -> Path:
    """A 2-layer, 16-wide random Llama with SmolLM2's tokenizer and chat template (~3 MB): a
    real checkpoint that loads, renders, scores and trains in seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    config = LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(Path(smollm2_spec.path) / name, directory / name)
    return directory
