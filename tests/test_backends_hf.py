"""The Hugging Face backend on the two real packaged models."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import skythought_rows
from rdpt_core.backends import available_backends, create_backend
from rdpt_core.models import with_overrides
from rdpt_core.scoring import action_scores, assign_tokens
from rdpt_core.segment import marker_set, segment

pytestmark = pytest.mark.slow


def test_registry_knows_the_hf_backend_and_rejects_unknown_names(smollm2_spec):
    assert "hf" in available_backends()
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        create_backend(with_overrides(smollm2_spec, backend="vllm"))


def test_tokenizer_facts(smollm2, gemma):
    s, g = smollm2.facts(), gemma.facts()
    assert (s.vocab_size, s.adds_bos, s.has_chat_template, s.context_window) == (49152, False, True, 8192)
    assert (g.vocab_size, g.adds_bos, g.has_chat_template, g.context_window) == (262144, True, False, 32768)
    assert g.bos_token == "<bos>" and "<eos>" in g.special_tokens
    assert "<|im_start|>" in s.special_tokens


def test_gemma_gets_exactly_one_bos_and_smollm2_none(smollm2, gemma, gemma_spec):
    bos = gemma.tokenizer.bos_token_id
    ids, offsets, n_prefix = gemma.encode("Question\n\n", "Answer.")
    assert ids[0] == bos and ids.count(bos) == 1 and n_prefix == 1 and offsets[0].tolist() == [0, 0]
    # a context that already starts with <bos> (as Gemma chat templates do) gets no second one
    with_bos = create_backend(with_overrides(gemma_spec, raw_template="<bos>{prompt}\n\n"))
    ctx = with_bos.render_context("Question")
    ids2, _, n_prefix2 = with_bos.encode(ctx, "Answer.")
    assert ctx.startswith("<bos>") and ids2.count(bos) == 1 and n_prefix2 == 0
    s_ids, _, s_prefix = smollm2.encode("Question\n\n", "Answer.")
    assert s_prefix == 0 and s_ids == smollm2.tokenizer("Question\n\nAnswer.", add_special_tokens=False).input_ids


def test_gemma_scores_the_first_response_token_thanks_to_bos(gemma):
    scores = gemma.score("", "Hello world.")
    assert np.isfinite(scores.logprobs).all()  # BOS precedes even an empty context


def test_chat_template_versus_raw(smollm2, smollm2_spec, gemma, gemma_spec):
    chat = smollm2.render_context("What is 2+2?")
    assert chat == smollm2.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, tokenize=False)
    assert chat.endswith("<|im_start|>assistant\n") and "What is 2+2?" in chat
    raw_backend = create_backend(with_overrides(smollm2_spec, template="raw"))
    assert raw_backend.render_context("What is {x}? 2+2") == "What is {x}? 2+2\n\n"  # braces kept
    custom = create_backend(with_overrides(smollm2_spec, template="raw", raw_template="Q: {prompt}\nA:"))
    assert custom.render_context("2+2?") == "Q: 2+2?\nA:"
    response = "2 + 2 = 4. The answer is 4."
    chat_lp = smollm2.score(chat, response).logprobs
    raw_lp = raw_backend.score(raw_backend.render_context("What is 2+2?"), response).logprobs
    assert len(chat_lp) == len(raw_lp) and not np.allclose(chat_lp, raw_lp, atol=1e-3)
    assert gemma.render_context("Hi") == "Hi\n\n"  # base model: auto falls back to raw
    with pytest.raises(ValueError, match="no chat template"):
        create_backend(with_overrides(gemma_spec, template="chat")).render_context("Hi")


WORKED = (
    "<|begin_of_thought|>\n\nSo x = 3. Then y? Yes!\n\nWait, \\boxed{3}\n\nOk.<|end_of_thought|>"
    "\n\n<|begin_of_solution|>\n\nFinal: 3.  "
)


@pytest.mark.parametrize("which", ["smollm2", "gemma"])
def test_bpe_token_across_an_action_boundary(which, request):
    # Neither vocabulary merges punctuation with the whitespace after it, but both have ".<":
    # in "Ok.<|end_of_thought|>" it holds one character of the sentence and one of the marker,
    # a tie, so it belongs to the earlier action, the sentence.
    backend = request.getfixturevalue(which)
    actions = segment(WORKED, marker_set(backend.facts().special_tokens))
    scores = backend.score("Solve.\n\n", WORKED)
    crossing = [(i, a) for i, (s, e) in enumerate(scores.offsets) for a in actions[1:] if s < a.start < e]
    assert [(WORKED[slice(*scores.offsets[i])], a.text) for i, a in crossing] == [(".<", "<|end_of_thought|>")]
    owner = assign_tokens(scores.offsets, np.array([a.start for a in actions] + [len(WORKED)]))
    assert actions[owner[crossing[0][0]]].text == "\n\nOk."
    per_action = action_scores(scores, actions)
    assert per_action.n_tokens.sum() == np.isfinite(scores.logprobs).sum()


def test_token_straddling_the_context_seam_is_flagged(gemma):
    # context ends with "\n" and the response starts with "\n": Gemma has one "\n\n" token.
    scores = gemma.score("Question\n", "\nAnswer. More.")
    assert scores.straddle[0] and not scores.straddle[1:].any()
    assert scores.offsets[0].tolist()[0] == 0
    assert action_scores(scores, segment("\nAnswer. More.", markers=[])).straddle.tolist() == [True, False]


def _window_reference(ref, ids, window, left):
    """Plain forward passes over the windows the documented rule prescribes."""
    logp = [None] * len(ids)
    pos = 1
    while pos < len(ids):
        start = 0 if pos < window else pos - left
        stop = min(start + window, len(ids))
        with torch.no_grad():
            out = torch.log_softmax(ref.model(torch.tensor([ids[start:stop]])).logits[0].double(), -1)
        for p in range(pos, stop):
            logp[p] = out[p - start - 1, ids[p]].item()
        pos = stop
    return logp


def test_sliding_window_matches_plain_windows(smollm2_spec, smollm2_ref):
    small = create_backend(with_overrides(smollm2_spec, max_context=96, min_left_context=40))
    response = skythought_rows("math500.gemma-2-27b-it")[1]["code"][0][:1200]
    context = small.render_context("Solve it.")
    scores = small.score(context, response)
    ids, _, n_prefix = small.encode(context, response)
    assert len(ids) > 2 * 96  # several windows
    want = _window_reference(smollm2_ref, ids, 96, 40)
    first = len(ids) - scores.n_tokens
    assert np.allclose(scores.logprobs, want[first:], atol=1e-5)
    assert scores.truncated.tolist() == [p >= 96 for p in range(first, len(ids))]


def test_response_longer_than_smollm2_window_is_scored_and_flagged(smollm2):
    rows = skythought_rows("aime24.sky-t1-correct-5k-27b")
    response = "\n\n".join(r["code"][0] for r in rows[:3])  # ~12k real tokens > 8,192
    context = smollm2.render_context(rows[0]["question"])
    ids, _, _ = smollm2.encode(context, response)
    assert len(ids) > 8192
    scores = smollm2.score(context, response)
    first = len(ids) - scores.n_tokens
    assert np.isfinite(scores.logprobs).all()
    assert scores.truncated.tolist() == [p >= 8192 for p in range(first, len(ids))]
    per_action = action_scores(scores, segment(response, marker_set(smollm2.facts().special_tokens)))
    assert per_action.truncated.any() and not per_action.truncated[0]
    assert np.isfinite(per_action.p[per_action.n_tokens > 0]).all()
    smollm2.unload()


@pytest.mark.parametrize("quantization", ["nf4", "8bit"])
def test_bitsandbytes_quantized_models_load_and_score(smollm2_spec, smollm2, quantization):
    response = "First we add the numbers. Then we check the result. The answer is 7."
    context = smollm2.render_context("What is 3 + 4?")
    quant = create_backend(with_overrides(smollm2_spec, quantization=quantization))
    q_scores = quant.score(context, response)
    fp32 = smollm2.score(context, response)
    assert quant.fingerprint != smollm2.fingerprint  # cached separately
    assert np.isfinite(q_scores.logprobs).all()
    assert np.array_equal(q_scores.offsets, fp32.offsets)
    # quantization perturbs, it does not scramble: per-token log-probs stay strongly correlated
    assert np.corrcoef(q_scores.logprobs, fp32.logprobs)[0, 1] > 0.9
    quant.unload()
    assert not quant.is_loaded


def test_unload_frees_the_model_and_the_next_score_reloads(smollm2):
    smollm2.score("Q\n\n", "A.")
    before = smollm2.load_count
    smollm2.unload()
    assert not smollm2.is_loaded
    smollm2.score("Q\n\n", "A.")
    assert smollm2.load_count == before + 1


def test_log_probs_are_log_probabilities(gemma):
    scores = gemma.score("The capital of France is", " Paris.")
    assert (scores.logprobs <= 0).all() and math.exp(scores.logprobs[0]) > 1e-4


def test_generation_says_which_responses_the_token_limit_cut(smollm2):
    from rdpt_core.backends.base import SamplingSettings

    context = smollm2.render_context("Reply with the single word OK.")

    def greedy(max_new_tokens: int, stop_regex: str | None = None):
        settings = SamplingSettings(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop_regex=stop_regex)
        return smollm2.generate_detailed([context], settings)[0][0]

    # what the model does, read from a plain transformers call: its greedy reply ends with
    # <|im_end|> well before 48 tokens
    smollm2.load()
    ids = torch.tensor([smollm2.encode(context, "")[0]])
    with torch.inference_mode():
        reference = smollm2._model.generate(input_ids=ids, max_new_tokens=48, do_sample=False)[0, ids.shape[1]:]
    end = smollm2.tokenizer.convert_tokens_to_ids("<|im_end|>")
    n_reply = reference.tolist().index(end)
    assert 0 < n_reply < 40

    ended = greedy(48)
    assert ended.truncated is False and ended.text == smollm2.tokenizer.decode(reference[:n_reply])
    cut = greedy(n_reply)  # the limit falls just before the end token
    assert cut.truncated is True and cut.text == ended.text
    assert greedy(n_reply, stop_regex=r"\S").truncated is False  # stopped by the stop rule
    assert smollm2.generate([context], SamplingSettings(n=1, temperature=0.0, max_new_tokens=48)) == [[ended.text]]


# ---- batched scoring (issue 14): equal to one record at a time and to a plain forward pass ---------
def _real_pairs(backend, n_short: int) -> list[tuple[str, str]]:
    """Real model outputs of very different lengths: the lab's test answers (~100 tokens with
    their context), a long MATH500 solution (> 512 tokens: past Gemma's sliding-window
    attention span), a one-token answer and one whose first token straddles the seam."""
    lines = (Path(__file__).parents[1] / "demo/steps/test_trajectories.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[:n_short]]
    pairs = [(backend.render_context(r["prompt"]), r["response"]) for r in rows]
    long_row = max(skythought_rows("math500.gemma-2-27b-it"), key=lambda r: len(r["code"][0]))
    pairs.append((backend.render_context(long_row["question"]), long_row["code"][0][:3000]))
    pairs.append((backend.render_context("2 + 2?"), "4"))
    pairs.append(("Question\n", "\nAnswer. More."))  # Gemma: one "\n\n" token across the seam
    return pairs


def _batched(backend, pairs, batch_tokens):
    yields = list(backend.score_batches(pairs, batch_tokens=batch_tokens))
    got = dict(item for done in yields for item in done)
    assert sorted(got) == list(range(len(pairs)))  # each pair exactly once
    return got, len(yields)


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_batched_log_probs_equal_per_record_and_a_plain_forward_pass(name, request):
    backend, ref = request.getfixturevalue(name), request.getfixturevalue(f"{name}_ref")
    pairs = _real_pairs(backend, 12)
    lengths = [len(backend.encode(c, r)[0]) for c, r in pairs]
    assert max(lengths) > 512 and min(lengths) < 20
    # one budget that puts the long answer with short ones (padding-heavy), one that packs
    # the short answers together
    for budget in (4 * max(lengths), 4 * sorted(lengths)[-2]):
        batched, n_yields = _batched(backend, pairs, budget)
        assert n_yields < len(pairs)  # several records shared a forward pass
        for (context, response), i in zip(pairs, range(len(pairs))):
            one = backend.score(context, response)
            got = batched[i]
            assert got.token_ids.tolist() == one.token_ids.tolist()
            assert got.offsets.tolist() == one.offsets.tolist() and got.straddle.tolist() == one.straddle.tolist()
            assert np.allclose(got.logprobs, one.logprobs, atol=1e-5, rtol=0, equal_nan=True)
            ids, _, want, _ = ref.token_logprobs(context, response)
            tail = np.array([np.nan if v is None else v for v in want[len(ids) - got.n_tokens:]])
            assert np.allclose(got.logprobs, tail, atol=1e-4, rtol=0, equal_nan=True)
    straddling = batched[len(pairs) - 1]
    assert straddling.straddle[0] == (name == "gemma")


def test_batched_sliding_windows_equal_per_record_and_the_documented_windows(smollm2_spec, smollm2_ref):
    small = create_backend(with_overrides(smollm2_spec, max_context=96, min_left_context=40))
    pairs = _real_pairs(small, 6)
    batched, n_yields = _batched(small, pairs, 4 * 96)
    assert n_yields < len(pairs)
    for i, (context, response) in enumerate(pairs):
        ids, _, _ = small.encode(context, response)
        got = batched[i]
        first = len(ids) - got.n_tokens
        want = np.array([np.nan if v is None else v for v in _window_reference(smollm2_ref, ids, 96, 40)[first:]])
        assert np.allclose(got.logprobs, want, atol=1e-4, rtol=0, equal_nan=True)
        assert np.allclose(got.logprobs, small.score(context, response).logprobs, atol=1e-5, rtol=0, equal_nan=True)
        assert got.truncated.tolist() == [p >= 96 for p in range(first, len(ids))]
    assert any(batched[i].truncated.any() for i in batched)



# ---- the blocked head (issue 14) ---------------------------------------------------------------
@pytest.mark.parametrize("cap", [None, 5.0])
def test_the_blocked_head_equals_a_full_log_softmax(tiny, cap, monkeypatch):
    from rdpt_core.backends.hf import HEAD_BLOCK, _Head
    from rdpt_core.models import resolve_spec

    backend = create_backend(resolve_spec(str(tiny)))
    backend.load()
    monkeypatch.setattr(backend._model.config, "final_logit_softcapping", cap, raising=False)
    rows_per_block, vocab_per_block = HEAD_BLOCK["cpu"]
    n_rows, vocab = 2 * rows_per_block + 37, 3 * vocab_per_block + 5  # ragged last blocks both ways
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(n_rows, vocab, generator=generator) * 12  # wide enough that the max moves
    logits[:, -1] += 40  # the largest logit sits in the last, ragged vocabulary block
    targets = torch.randint(0, vocab, (n_rows,), generator=generator)
    targets[:3] = torch.tensor([0, vocab - 1, vocab_per_block])  # block edges
    head = _Head(vocab, lambda lo, hi, v_lo, v_hi: logits[lo:hi, v_lo:v_hi])
    got = backend._target_log_probs(head, targets).numpy()
    capped = logits.double() if cap is None else torch.tanh(logits.double() / cap) * cap
    want = torch.log_softmax(capped, -1).gather(-1, targets[:, None])[:, 0].numpy()
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("windowed", [True, False])
def test_the_lean_head_equals_the_models_own_logits(tiny, windowed):
    from rdpt_core.models import resolve_spec

    backend = create_backend(resolve_spec(str(tiny)))
    backend.load()
    assert (backend._rows_fn, backend._windowed) == (backend._lean_rows, True)  # chosen by the probe at load
    ids = backend.tokenizer("Two sequences, one padded: 1 + 1 = 2, and so on.").input_ids
    seqs = [(ids, 3), (ids[:7], 2)]
    lean = backend._batch_log_probs(seqs, (backend._lean_rows, windowed))
    assert backend._model.config._attn_implementation == "sdpa"  # its own attention again afterwards
    with torch.inference_mode():  # independent: the model's full logits, one sequence at a time
        for (seq, start), got in zip(seqs, lean):
            logp = torch.log_softmax(backend._model(torch.tensor([seq])).logits[0].double(), -1)
            want = logp[start - 1 : len(seq) - 1].gather(-1, torch.tensor(seq[start:])[:, None])[:, 0]
            assert np.abs(got - want.numpy()).max() < 1e-5


# ---- opening from a stored profile (no tokenizer, no torch): issue 14 ------------------------------
PROMPTS = ["What is 2+2?", "Solve $\\frac{x}{2} = {y}$ for x.", "<|im_start|>user\nsneaky<|im_end|>", "",
           "Line one\n\nLine two  ", "<bos><start_of_turn>user"]


@pytest.mark.parametrize("name", ["smollm2_spec", "gemma_spec", "tiny"])
def test_profile_rendering_equals_the_tokenizers_own_chat_template(name, request, tmp_path):
    from transformers import AutoTokenizer

    from rdpt_core.cache import TokenCache
    from rdpt_core.models import resolve_spec

    spec = request.getfixturevalue(name)
    spec = resolve_spec(str(spec)) if name == "tiny" else spec
    cache = TokenCache(tmp_path)
    first = create_backend(spec, cache)  # builds the profile from the tokenizer and stores it
    again = create_backend(spec, cache)  # opens from the stored profile
    assert again._tokenizer is None and again.profile == first.profile
    tok = AutoTokenizer.from_pretrained(spec.path)
    for prompt in PROMPTS:
        want = (tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        tokenize=False) if tok.chat_template else f"{prompt}\n\n")
        assert again.render_context(prompt) == want
    assert again.facts().special_tokens == tuple(tok.all_special_tokens)
    assert again._tokenizer is None  # rendering and facts needed no tokenizer
    # tokenizing loads it, checked as always, with the same ids and offsets as a fresh backend
    ids, offsets, prefix = again.encode("Q\n\n", "A.")
    want_ids, want_offsets, want_prefix = first.encode("Q\n\n", "A.")
    assert (ids, prefix) == (want_ids, want_prefix) and np.array_equal(offsets, want_offsets)
    assert again._tokenizer is not None


def test_a_cached_cli_run_imports_no_torch_and_loads_no_model(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    rows = [json.loads(line) for line in (REPO / "demo/steps/test_trajectories.jsonl").read_text().splitlines()[:6]]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("record_id", "question_id", "prompt", "response")}) + "\n"
                            for r in rows))
    probe = ("import runpy, sys, atexit; atexit.register(lambda: print('TORCH', 'torch' in sys.modules, "
             "file=sys.stderr)); sys.argv = ['rdpt_core'] + sys.argv[1:]; runpy.run_module('rdpt_core', "
             "run_name='__main__')")
    args = ["score", "--input", str(data), "--teacher", "smollm2-135m-instruct", "--student", "gemma3-270m",
            "--distilled", "gemma3-270m-steps-distilled", "--out", str(tmp_path / "t.parquet"),
            "--cache-dir", str(tmp_path / "cache")]
    runs = [subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, text=True)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    assert "TORCH True" in runs[0].stderr and "teacher: 6 scored" in runs[0].stderr
    assert "TORCH False" in runs[1].stderr, runs[1].stderr[-2000:]
    for role in ("teacher", "student", "distilled"):
        assert f"{role}: 0 scored, 6 from cache, model loaded 0x" in runs[1].stderr
    assert pd.read_parquet(tmp_path / "t.parquet")["record_id"].nunique() == 6


def test_a_bf16_model_keeps_the_lean_head_and_its_own_attention(tiny):
    # windowed attention is checked to 1e-4 at load, which bf16 cannot meet (docs/engine.md)
    from rdpt_core.models import resolve_spec

    backend = create_backend(resolve_spec(str(tiny), dtype="bfloat16"))
    backend.load()
    assert backend.dtype == "bfloat16" and (backend._rows_fn, backend._windowed) == (backend._lean_rows, False)
