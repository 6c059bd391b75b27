"""Hugging Face transformers backend: local dirs, hub ids, GGUF files, bitsandbytes 8-bit/nf4.

The log-prob shift lives here and only here::

    tokens : [bos ctx0 ctx1 ... ctxN | r0  r1  r2 ...]
    logits :  predicts→ ctx0 ...     r0   r1  r2  r3
    logp(r_k) = logits[pos(r_k) - 1][r_k] - logsumexp(logits[pos(r_k) - 1])

Context and response are tokenized *together* and split by character offsets, so tokens at the
seam are the ones the model really sees. Log-probs are computed as "target logit minus a
chunked logsumexp" over the decoder's hidden states, taken only at the rows that predict a
response token (``pos(r_0) - 1`` onwards), so no full ``[tokens x vocab]`` matrix is ever built
(Gemma's 262,144-entry vocabulary would need 2 GiB for 2,048 tokens) and the head never runs on
the context. Many pairs are scored in right-padded, length-sorted batches
(:meth:`HFBackend.score_batches`); :meth:`HFBackend.score` is a batch of one.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..batching import Window, padded_length, plan_batches, plan_windows
from ..models import CheckpointError, ModelSpec, check_local_checkpoint, fingerprint, pin_revision
from . import register_backend
from .attention import windowed
from .base import Generated, ProfileStore, SamplingSettings, ScoringBackend, TokenizerFacts, TokenScores

log = logging.getLogger(__name__)

# (rows, vocabulary entries) per block of the head's product: a 4 MiB fp32 block stays in a CPU's
# cache (measured: docs/engine.md, "Token log-probs"); a GPU wants fewer, larger launches.
HEAD_BLOCK = {"cpu": (1024, 1024), "cuda": (8192, 16384)}
# Padded tokens per forward batch by default: the CPU value reaches 0.81–0.99 of the fp32 GEMM bound
# on short answers (`make bench-scoring`, docs/benchmarks.md; not swept); the GPU value is a guess.
DEFAULT_BATCH_TOKENS = {"cpu": 2048, "cuda": 16384}
# Every window runs right-padded to a multiple of this many tokens, alone or in a batch, so a
# row meets tensors of one shape either way and batching changes no number (docs/method.md §16).
PAD_MULTIPLE = 64
_PROBE_TEXT = "The quick brown fox jumps over the lazy dog. Then 2 + 2 = 4."


def _no_cuda_possible() -> bool:
    """True when this machine surely has no CUDA GPU, known without importing torch (seconds):
    Linux without the NVIDIA control device (nor WSL's GPU device), or a Mac."""
    if sys.platform == "darwin":
        return True
    return sys.platform.startswith("linux") and not any(os.path.exists(d) for d in ("/dev/nvidiactl", "/dev/dxg"))


def resolve_device(device: str) -> str:
    if device == "auto" and _no_cuda_possible():
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: float32 on CPU (bf16 matmuls are ~5x slower there), bfloat16 on a GPU."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device == "cuda" else "float32"


def _gguf_kwargs(spec: ModelSpec) -> dict[str, str]:
    return {"gguf_file": spec.gguf_file} if spec.gguf_file else {}


# ---- a chat template is code: render it once, bounded, before trusting it ----------------------
CHAT_TEMPLATE_BUDGET_S = 5.0  # rendering a test prompt (normal templates take milliseconds)
_PROBE_STARTUP_S = 120.0  # the child's imports, on a busy machine; a backstop only
_PROBE_MEMORY_BYTES = 1 << 30  # what the rendering may allocate on top of the imports
_PROBE_MAX_CHARS = 1_000_000  # a test prompt rendered longer than this is a template gone wrong
_PROBE_PROMPT = ("Solve for $x$: \\frac{x}{2} + {y} = 3. Show each step, then give the answer. " * 40).strip()
# Runs in a child process: transformers' own renderer (its sandbox, filters and globals), under
# a wall-clock alarm that kills the process even inside C code (a huge ``7**(10**8)``) and an
# address-space limit. Imports come first: the budget is for rendering only.
_PROBE_CHILD = r"""
import json, os, sys
from transformers.utils.chat_template_utils import render_jinja_template
job = json.loads(sys.stdin.read())
try:
    import resource, signal
    used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + job["memory"], resource.getrlimit(resource.RLIMIT_AS)[1]))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, job["budget"])
except (ImportError, AttributeError, OSError, ValueError):
    pass  # no /proc or rlimits here: the parent's timeout still bounds the wait
try:
    rendered, _ = render_jinja_template(
        conversations=[[{"role": "user", "content": job["prompt"]}]], chat_template=job["template"],
        add_generation_prompt=True, **job["special"])
    result = {"ok": True, "chars": len(rendered[0])}
except BaseException as err:  # MemoryError, RecursionError, the template's own raise_exception
    result = {"ok": False, "error": f"{type(err).__name__}: {err}"[:500]}
try:
    signal.setitimer(signal.ITIMER_REAL, 0)  # rendering is over: the budget must not catch the exit
except (NameError, AttributeError, OSError):
    pass
sys.stdout.write(json.dumps(result))
sys.stdout.flush()
os._exit(0)  # no interpreter teardown: inside a Ray worker it took seconds
"""
_TEMPLATES_CHECKED: set[str] = set()  # digests of templates that rendered in time (per process)


def probe_chat_template(template: str, special_tokens: dict[str, Any], label: str) -> None:
    """Render ``template`` on a test prompt in a child process, within
    :data:`CHAT_TEMPLATE_BUDGET_S` and :data:`_PROBE_MEMORY_BYTES`; a template that loops for
    ever, explodes or fails raises :class:`CheckpointError`. Each template is probed once per
    process, so only the first backend using it pays for the child (about a second)."""
    digest = hashlib.sha256(json.dumps([template, special_tokens], sort_keys=True, default=str).encode()).hexdigest()
    if digest in _TEMPLATES_CHECKED:
        return
    job = json.dumps({"template": template, "special": special_tokens, "prompt": _PROBE_PROMPT,
                      "budget": CHAT_TEMPLATE_BUDGET_S, "memory": _PROBE_MEMORY_BYTES}, default=str)
    fix = "fix chat_template (tokenizer_config.json or chat_template.jinja), or score with template 'raw'"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE_CHILD], input=job, capture_output=True, text=True,
                              timeout=_PROBE_STARTUP_S + CHAT_TEMPLATE_BUDGET_S, env=env)
    except subprocess.TimeoutExpired:  # run() has killed the child
        done = None
    alarm = getattr(signal, "SIGALRM", None)  # POSIX; elsewhere only the parent's timeout bounds it
    if done is None or (alarm is not None and done.returncode == -alarm):
        raise CheckpointError(f"{label}: its chat template did not finish rendering a test prompt within "
                              f"{CHAT_TEMPLATE_BUDGET_S:g} s (a runaway loop?) and was stopped; {fix}")
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise CheckpointError(f"{label}: its chat template could not be test-rendered ({tail[0]}); {fix}") from None
    if not result["ok"]:
        raise CheckpointError(f"{label}: its chat template fails on a test prompt ({result['error']}); {fix}")
    if result["chars"] > _PROBE_MAX_CHARS:
        raise CheckpointError(f"{label}: its chat template turns a {len(_PROBE_PROMPT)}-character prompt into "
                              f"{result['chars']:,} characters; {fix}")
    _TEMPLATES_CHECKED.add(digest)


@dataclass(frozen=True)
class _Head:
    """The head's logits at the scored rows, one block at a time: ``block(lo, hi, v_lo, v_hi)``
    is the ``[hi - lo, v_hi - v_lo]`` slice of ``[rows x vocab]``, which is never built whole."""

    vocab: int
    block: Callable[[int, int, int, int], Any]


@dataclass(frozen=True)
class _Prepared:
    """One pair, tokenized together: ids of ``[BOS] context + response``, their character
    offsets in that text, the context's length in characters, the index of the first response
    token and the windows that score the response."""

    ids: list[int]
    offsets: np.ndarray
    ctx_len: int
    first: int
    windows: list[Window]

    def scores(self, logp: np.ndarray, truncated: np.ndarray) -> TokenScores:
        """The response's slice (tokens ``first …``) of per-position arrays."""
        keep = slice(self.first, len(self.ids))
        return TokenScores(
            token_ids=np.asarray(self.ids[keep], dtype=np.int64),
            offsets=np.clip(self.offsets[keep] - self.ctx_len, 0, None),
            logprobs=logp[keep],
            truncated=truncated[keep],
            straddle=self.offsets[keep, 0] < self.ctx_len,
        )


_T = TypeVar("_T")


def _owning(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run a model-side method holding the backend's lock, so loading, a forward pass,
    generation and freeing the weights never interleave across threads."""
    @functools.wraps(method)
    def owned(self: ScoringBackend, *args: Any, **kwargs: Any) -> _T:
        with self.lock:
            return method(self, *args, **kwargs)

    return owned


PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {"vocab_size": int, "bos_token": (str, type(None)), "adds_bos": bool, "pad_id": int,
                "chat_template": (str, type(None)), "special_tokens_map": dict, "special_tokens": list,
                "context_window": (int, type(None))}


def valid_profile(profile: Any) -> bool:
    return isinstance(profile, dict) and set(profile) == set(PROFILE_KEYS) and all(
        isinstance(profile[key], kind) for key, kind in PROFILE_KEYS.items())


@register_backend("hf")
class HFBackend(ScoringBackend):
    """``profiles``: where the tokenizer's *profile* (what rendering a context, the job's markers
    and the cache keys need: chat template, special tokens, BOS rule, window) is kept per
    fingerprint. With a stored profile the backend opens without loading the tokenizer (and so
    without importing torch): a job whose scores are all cached stays fast. The tokenizer is
    then loaded, with every check, only when something is tokenized."""

    def __init__(self, spec: ModelSpec, profiles: ProfileStore | None = None) -> None:
        # Local files are checked and hub commits pinned before transformers sees the name, so
        # a bad checkpoint fails here, fast and named, and scores are filed under the commit.
        check_local_checkpoint(spec)
        spec, online = pin_revision(spec)
        super().__init__(spec)
        # Offline, or the hub did not answer: files from the local cache only (no minute of retries).
        self._load_kwargs: dict[str, Any] = dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                                                 local_files_only=not online, **_gguf_kwargs(spec))
        self.device = resolve_device(spec.device)
        self.dtype = resolve_dtype(spec.dtype, self.device)
        self._fingerprint = fingerprint(spec, self.dtype)
        # A transformers PreTrainedModel, or a PeftModel wrapping one (which forwards attributes
        # to it at run time): no static type covers both, so Any.
        self._model: Any = None
        self._rows_fn: Callable[[dict[str, Any], Any], _Head] | None = None
        self._windowed = False  # run attention.windowed_attention (chosen at load)
        self._tokenizer: Any = None
        stored = profiles.get_profile(self._fingerprint) if profiles is not None else None
        if valid_profile(stored):
            self.profile: dict[str, Any] = dict(stored)  # type: ignore[arg-type]  # checked just above
        else:
            self.profile = self._profile_from_tokenizer()
            if profiles is not None:
                profiles.put_profile(self._fingerprint, self.profile)

    # ---- tokenizer side (cheap) -------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The fast tokenizer, loaded and checked on first use (its chat template test-rendered)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            spec = self.spec
            try:
                tokenizer = AutoTokenizer.from_pretrained(spec.path, **self._load_kwargs)
            except (OSError, ValueError, KeyError) as err:  # transformers' own message, with the model named
                raise CheckpointError(f"{spec.label}: cannot load the tokenizer from {spec.path}: {err}") from err
            if not tokenizer.is_fast:
                raise ValueError(f"{spec.label}: the tokenizer has no fast (Rust) version, so it cannot report "
                                 "character offsets, which scoring needs")
            if spec.template != "raw" and tokenizer.chat_template:
                probe_chat_template(tokenizer.get_chat_template(), dict(tokenizer.special_tokens_map), spec.label)
            self._tokenizer = tokenizer
        return self._tokenizer

    def _config_window(self) -> int | None:
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(self.spec.path, **self._load_kwargs)
        except (OSError, ValueError, KeyError) as err:
            raise CheckpointError(f"{self.spec.label}: cannot load the config from {self.spec.path}: {err}") from err
        return getattr(getattr(config, "text_config", config), "max_position_embeddings", None)

    def _profile_from_tokenizer(self) -> dict[str, Any]:
        tok = self.tokenizer
        bos = tok.bos_token_id
        adds_bos = False
        if bos is not None:
            with_special = tok("a", add_special_tokens=True).input_ids
            adds_bos = len(with_special) > len(tok("a", add_special_tokens=False).input_ids) and with_special[0] == bos
        pad = tok.pad_token_id
        return {"vocab_size": len(tok), "bos_token": tok.bos_token, "adds_bos": adds_bos,
                "pad_id": pad if pad is not None else 0,  # right padding: never seen by a real token
                "chat_template": tok.get_chat_template() if tok.chat_template else None,
                "special_tokens_map": {k: [str(x) for x in v] if isinstance(v, (list, tuple)) else str(v)
                                       for k, v in tok.special_tokens_map.items()},
                "special_tokens": list(tok.all_special_tokens), "context_window": self._config_window()}

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def _adds_bos(self) -> bool:
        return bool(self.profile["adds_bos"])

    @property
    def _pad_id(self) -> int:
        return int(self.profile["pad_id"])

    @property
    def context_window(self) -> int | None:
        return self.spec.max_context or self.profile["context_window"]

    def facts(self) -> TokenizerFacts:
        info = self.profile
        return TokenizerFacts(
            vocab_size=info["vocab_size"],
            bos_token=info["bos_token"],
            adds_bos=info["adds_bos"],
            has_chat_template=info["chat_template"] is not None,
            special_tokens=tuple(info["special_tokens"]),
            context_window=self.context_window,
        )

    def render_context(self, prompt: str) -> str:
        """The chat template rendered as ``tokenizer.apply_chat_template(..., tokenize=False)``
        renders it (the same transformers function, the same arguments), from the profile."""
        mode = self.spec.template
        template = self.profile["chat_template"]
        if mode == "chat" and template is None:
            raise ValueError(f"{self.spec.label}: template 'chat' asked for, but it has no chat template")
        if mode == "chat" or (mode == "auto" and template is not None):
            from transformers.utils.chat_template_utils import render_jinja_template

            special: dict[str, Any] = self.profile["special_tokens_map"]
            rendered = render_jinja_template(
                conversations=[[{"role": "user", "content": prompt}]], chat_template=template,
                add_generation_prompt=True, **special)[0]
            return str(rendered[0])
        # str.replace, not str.format: prompts are full of braces (LaTeX, code).
        return self.spec.raw_template.replace("{prompt}", prompt)

    def encode(self, context: str, response: str) -> tuple[list[int], np.ndarray, int]:
        """Token ids of ``[BOS] context + response``, their character offsets into that text,
        and how many ids were prepended (the BOS, whose offsets are ``(0, 0)``)."""
        enc = self.tokenizer(
            context + response, add_special_tokens=False, return_offsets_mapping=True
        )
        ids = list(enc.input_ids)
        offsets = np.asarray(enc.offset_mapping, dtype=np.int64).reshape(-1, 2)
        bos = self.tokenizer.bos_token
        if self._adds_bos and not context.startswith(bos):  # no double BOS
            ids = [self.tokenizer.bos_token_id, *ids]
            offsets = np.vstack([np.zeros((1, 2), dtype=np.int64), offsets])
            return ids, offsets, 1
        return ids, offsets, 0

    # ---- model side (heavy) -----------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @_owning
    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        if fingerprint(self.spec, self.dtype) != self._fingerprint:
            # Scores are filed under the identity taken when the backend was made: weights
            # swapped since then must not be scored under it.
            raise CheckpointError(f"{self.spec.label}: the files in {self.spec.path} changed since the model "
                                  "was opened; open it again")
        torch_dtype = getattr(torch, self.dtype)
        kwargs: dict = dict(
            **self._load_kwargs,
            dtype=torch_dtype,
            device_map={"": self.device},  # placed at load time: never .to() it afterwards
        )
        if self.spec.quantization == "8bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        elif self.spec.quantization == "nf4":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch_dtype
            )
        model: Any = AutoModelForCausalLM.from_pretrained(self.spec.path, **kwargs)
        if self.spec.adapter:
            from peft import PeftModel

            pinned: dict[str, Any] = {"revision": self.spec.adapter_revision} if self.spec.adapter_revision else {}
            model = PeftModel.from_pretrained(model, self.spec.adapter, **pinned)
            if self.spec.quantization == "none":
                model = model.merge_and_unload()  # plain weights: faster, same numbers
        model.eval()
        self._model = model
        self._rows_fn, self._windowed = self._choose_path()
        self.load_count += 1

    @_owning
    def unload(self) -> None:
        if self._model is None:
            return
        self._model = None
        self._rows_fn, self._windowed = None, False
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _input_device(self):
        return self._model.get_input_embeddings().weight.device

    @property
    def default_batch_tokens(self) -> int:
        """Padded tokens per forward batch when the caller names none (docs/benchmarks.md)."""
        return DEFAULT_BATCH_TOKENS["cuda" if self.device == "cuda" else "cpu"]

    def _lean_rows(self, inputs: dict[str, Any], rows: Any) -> _Head:
        """The head over the decoder's hidden states of only the flattened batch positions
        ``rows``: it (60% of Gemma's FLOPs) never runs on context tokens and no
        ``[tokens x vocab]`` matrix is built."""
        import torch

        hidden = self._model.get_decoder()(**inputs).last_hidden_state
        picked = hidden.reshape(-1, hidden.shape[-1])[rows]
        head = self._model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            raise TypeError(f"output embeddings are {type(head).__name__}, not a Linear layer")
        weight, bias = head.weight, head.bias

        def block(lo: int, hi: int, v_lo: int, v_hi: int) -> Any:
            return torch.nn.functional.linear(picked[lo:hi], weight[v_lo:v_hi], None if bias is None else bias[v_lo:v_hi])
        return _Head(int(weight.shape[0]), block)

    def _full_rows(self, inputs: dict[str, Any], rows: Any) -> _Head:
        """Fallback for architectures whose head is not ``lm_head(decoder(x))``: the model's
        own logits, taken at ``rows``."""
        logits = self._model(**inputs).logits
        picked = logits.reshape(-1, logits.shape[-1])[rows]
        return _Head(int(picked.shape[-1]), lambda lo, hi, v_lo, v_hi: picked[lo:hi, v_lo:v_hi])

    def _target_log_probs(self, head: _Head, targets: Any) -> Any:
        """``logit[target] - logsumexp(logits)`` per row, exact (a full log-softmax's numbers),
        in blocks of rows x vocabulary entries (:data:`HEAD_BLOCK`) with a running logsumexp:
        a block stays in cache, where a whole ``[rows x 262,144]`` product streams through
        memory at a fraction of the GEMM rate (docs/engine.md). Both terms are taken
        relative to the row's running largest logit, so neither is a large fp32 number (logits
        reach ±30, where one fp32 step is 2e-6): the result keeps the logits' own precision."""
        import torch

        cap = getattr(getattr(self._model, "config", None), "final_logit_softcapping", None)
        row_block, vocab_block = HEAD_BLOCK["cuda" if self.device == "cuda" else "cpu"]
        out = torch.empty(targets.shape[0], dtype=torch.float64)
        for lo in range(0, targets.shape[0], row_block):
            hi = min(lo + row_block, targets.shape[0])
            target = targets[lo:hi]
            top = torch.full((hi - lo,), -torch.inf, device=target.device)
            total = torch.zeros(hi - lo, dtype=torch.float64, device=target.device)
            picked = torch.zeros(hi - lo, device=target.device)
            for v_lo in range(0, head.vocab, vocab_block):
                v_hi = min(v_lo + vocab_block, head.vocab)
                logits = head.block(lo, hi, v_lo, v_hi).float()
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                new_top = torch.maximum(top, logits.max(dim=-1).values)
                total = total * torch.exp((top - new_top).double()) + (logits - new_top[:, None]).exp_().sum(dim=-1).double()
                top = new_top
                here = (target >= v_lo) & (target < v_hi)
                picked = torch.where(here, logits.gather(-1, (target - v_lo).clamp(0, v_hi - v_lo - 1)[:, None])[:, 0], picked)
            out[lo:hi] = ((picked - top).double() - torch.log(total)).cpu()
        return out

    def _batch_log_probs(self, seqs: Sequence[tuple[Sequence[int], int]],
                         path: tuple[Callable[[dict[str, Any], Any], _Head], bool] | None = None,
                         ) -> list[np.ndarray]:
        """One forward pass over several sequences: for each ``(ids, score_from)``, the log-probs
        of ``ids[score_from:]``, each given the ids before it. ``path`` (default: the one chosen
        at load) is the head (lean or full) and whether attention runs windowed.

        Sequences are right-padded to one width (a multiple of :data:`PAD_MULTIPLE`) and run
        with no padding mask: under causal attention a real token sees only the tokens before
        it, all real, at positions ``0 … n-1`` as when it runs alone, so a mask would change
        none of its numbers; without one, attention takes the fused causal kernel (a
        ``[tokens x tokens]`` mask cost SmolLM2 38% more body time on a 3,000-token answer).
        What pads compute is never read. Gemma's sliding windows hold too: a pad after a
        sequence never falls inside a real token's window."""
        import torch

        longest = max(len(ids) for ids, _ in seqs)
        width = padded_length(longest, PAD_MULTIPLE)
        if self.context_window:  # never pad past the positions the model has (learned position tables)
            width = min(width, max(self.context_window, longest))
        input_ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        rows, counts = [], []
        for b, (ids, score_from) in enumerate(seqs):
            input_ids[b, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
            rows.append(torch.arange(score_from - 1, len(ids) - 1) + b * width)  # row k predicts id k+1
            counts.append(len(ids) - score_from)
        flat_rows = torch.cat(rows)
        targets = input_ids.reshape(-1)[flat_rows + 1]
        device = self._input_device()
        inputs: dict[str, Any] = {"input_ids": input_ids.to(device),
                                  "position_ids": torch.arange(width, device=device).expand(len(seqs), width)}
        rows_fn, windowed_attention = path or (self._rows_fn, self._windowed)
        assert rows_fn is not None  # set by load()
        with torch.inference_mode(), windowed(self._model, windowed_attention):
            logp = self._target_log_probs(rows_fn(inputs, flat_rows.to(device)), targets.to(device)).numpy()
        return np.split(logp, np.cumsum(counts)[:-1])

    @property
    def _probe_tolerance(self) -> float:
        """How close the lean head must come to the model's own log-probs at load: fp32 paths
        agree to ~1e-5; in bf16/fp16 (and quantized models, which compute in them) two correct
        summation orders differ by a few units of the format's 8-bit mantissa."""
        return 1e-3 if self.dtype == "float32" else 5e-2

    def _choose_path(self) -> tuple[Callable[[dict[str, Any], Any], _Head], bool]:
        """The fastest path that reproduces the model's own numbers: the lean head when it
        gives the model's logits on a short padded probe batch, and windowed attention when
        it also gives the decoder's own hidden states on a probe longer than the model's
        sliding window (at most 2,048 tokens; a longer window keeps the model's attention)."""
        ids = self.tokenizer(_PROBE_TEXT).input_ids
        probe = [(ids, 1), (ids[: len(ids) // 2], 1)]
        reference = self._batch_log_probs(probe, (self._full_rows, False))
        try:
            lean = self._batch_log_probs(probe, (self._lean_rows, False))
        except (AttributeError, TypeError, NotImplementedError) as err:
            log.warning("%s: lean scoring unavailable (%s); using full logits", self.spec.label, err)
            return self._full_rows, False
        if not all(np.allclose(a, b, atol=self._probe_tolerance) for a, b in zip(lean, reference)):
            log.warning("%s: lean scoring disagrees with the model's logits; using full logits", self.spec.label)
            return self._full_rows, False
        # Windowed attention only in fp32, where the probe can tell it from the model's own to
        # 1e-4: in bf16 the two differ by up to 0.17 nats on Gemma (mean 0.017), which no probe
        # can tell from a real fault, so half-precision models keep their own attention.
        return self._lean_rows, self.dtype == "float32" and self._windowed_attention_matches(ids)

    def _windowed_attention_matches(self, ids: list[int]) -> bool:
        import torch

        config = self._model.config
        window = getattr(config.get_text_config() if hasattr(config, "get_text_config") else config,
                         "sliding_window", None)
        if isinstance(window, int):
            if window > 2048:
                return False
            ids = (ids * (window // len(ids) + 2))[: window + PAD_MULTIPLE // 2]
        decoder = self._model.get_decoder()
        batch = torch.tensor([ids], device=self._input_device())
        try:
            with torch.inference_mode():
                own = decoder(input_ids=batch).last_hidden_state
                with windowed(self._model):
                    got = decoder(input_ids=batch).last_hidden_state
        except (AttributeError, TypeError, ValueError, NotImplementedError) as err:
            log.info("%s: windowed attention unavailable (%s)", self.spec.label, err)
            return False
        if torch.allclose(got, own, rtol=1e-4, atol=1e-4):
            return True
        log.warning("%s: windowed attention disagrees with the model's own; not used", self.spec.label)
        return False

    def _window(self, n_ids: int) -> tuple[int, int]:
        window = self.context_window or max(n_ids, 2)
        left = self.spec.min_left_context or window // 2
        if not 1 <= left < window:
            raise ValueError(f"{self.spec.label}: min_left_context must be in [1, {window}), got {left}")
        return window, left

    def _prepare(self, context: str, response: str) -> _Prepared:
        """Tokenize one pair and plan its windows (only those scoring response tokens)."""
        ids, offsets, n_prefix = self.encode(context, response)
        ctx_len = len(context)
        starts, ends = offsets[:, 0], offsets[:, 1]
        is_prefix = np.arange(len(ids)) < n_prefix
        # Response tokens: any token reaching past the context, plus zero-width tokens at or
        # after the seam (they ride with the next token's action downstream).
        in_response = ~is_prefix & ((ends > ctx_len) | ((starts == ends) & (starts >= ctx_len)))
        first = int(np.argmax(in_response)) if in_response.any() else len(ids)
        window, left = self._window(len(ids))
        return _Prepared(ids, offsets, ctx_len, first, plan_windows(len(ids), window, left, first))

    def score_batches(
        self, pairs: Sequence[tuple[str, str]], batch_tokens: int | None = None,
    ) -> Iterator[list[tuple[int, TokenScores]]]:
        """Length-sorted batches of windows under ``batch_tokens`` padded tokens (default
        :attr:`default_batch_tokens`), see :mod:`rdpt_core.batching`. The windows of a long
        response may land in different batches; it is yielded once its last one has run.
        Each batch holds :attr:`lock` while it runs (never across a yield)."""
        prepared = [self._prepare(context, response) for context, response in pairs]
        jobs = [(i, w) for i, p in enumerate(prepared) for w in p.windows]
        logp = [np.full(len(p.ids), np.nan) for p in prepared]
        truncated = [np.zeros(len(p.ids), dtype=bool) for p in prepared]
        windows_left = [len(p.windows) for p in prepared]
        nothing_to_run = [(i, prepared[i].scores(logp[i], truncated[i])) for i in range(len(pairs)) if not windows_left[i]]
        if nothing_to_run:
            yield nothing_to_run
        for batch in plan_batches([w.length for _, w in jobs], batch_tokens or self.default_batch_tokens, PAD_MULTIPLE):
            seqs = [(prepared[i].ids[w.start : w.stop], w.score_from - w.start) for i, w in (jobs[k] for k in batch)]
            with self.lock:
                self.load()
                batch_logp = self._batch_log_probs(seqs)
            done = []
            for k, values in zip(batch, batch_logp):
                i, w = jobs[k]
                logp[i][w.score_from : w.stop] = values
                truncated[i][w.score_from : w.stop] = w.truncated
                windows_left[i] -= 1
                if not windows_left[i]:
                    done.append((i, prepared[i].scores(logp[i], truncated[i])))
            if done:
                yield done

    def score(self, context: str, response: str) -> TokenScores:
        [[(_, scores)]] = list(self.score_batches([(context, response)], batch_tokens=1))
        return scores

    # ---- sampling ---------------------------------------------------------------------------
    @_owning
    def generate_detailed(
        self, contexts: Sequence[str], settings: SamplingSettings,
        on_batch: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[Generated]]:
        """Sample ``settings.n`` responses per context, in left-padded batches.

        Batch ``b`` is seeded with ``settings.seed + b``, so the same settings give the same
        responses. Cancelling (``should_stop``) ends after the current batch; the contexts
        not finished get fewer (possibly no) responses.
        """
        import torch

        self.load()
        jobs = [i for i in range(len(contexts)) for _ in range(settings.n)]
        out: list[list[Generated]] = [[] for _ in contexts]
        ends = self._end_ids()
        stop_re = re.compile(settings.stop_regex) if settings.stop_regex else None
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        for b, lo in enumerate(range(0, len(jobs), settings.batch_size)):
            if should_stop is not None and should_stop():
                break
            batch = jobs[lo : lo + settings.batch_size]
            prompts = [self.encode(contexts[i], "")[0] for i in batch]
            width = max(map(len, prompts))
            ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=self._input_device())
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self._input_device())
            torch.manual_seed(settings.seed + b)
            sampling = settings.temperature > 0
            with torch.inference_mode():
                generated = self._model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=settings.max_new_tokens,
                    do_sample=sampling, temperature=settings.temperature if sampling else None,
                    top_p=settings.top_p if sampling else None, top_k=None,
                    pad_token_id=pad_id, stopping_criteria=self._stop_criteria(stop_re, width),
                )
            for i, row in zip(batch, generated[:, width:].tolist()):
                out[i].append(self._finish(row, stop_re, ends))
            if on_batch is not None:
                on_batch(min(lo + settings.batch_size, len(jobs)), len(jobs))
        return out

    def _end_ids(self) -> set[int]:
        """Token ids that end a generation: the tokenizer's EOS and the generation config's."""
        configured = getattr(getattr(self._model, "generation_config", None), "eos_token_id", None)
        ids = configured if isinstance(configured, list) else [configured]
        return {i for i in [*ids, self.tokenizer.eos_token_id] if isinstance(i, int)}

    def _finish(self, new_ids: list[int], stop_re: re.Pattern[str] | None, ends: set[int]) -> Generated:
        """The response's text (cut after a stop match) and whether the token limit cut it:
        neither an end token among its ids (padding after one comes later) nor a stop match."""
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        assert isinstance(text, str)  # one sequence of ids decodes to one string
        match = stop_re.search(text) if stop_re else None
        return Generated(text[: match.end()] if match else text,
                         truncated=match is None and not ends.intersection(new_ids))

    def _stop_criteria(self, stop_re: re.Pattern[str] | None, prompt_width: int):
        """Per-sequence stop once the new text matches ``stop_re`` (saves sampling time)."""
        if stop_re is None:
            return None
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tokenizer = self.tokenizer
        pattern = stop_re  # narrowed to a Pattern here; the closure below does not see the narrowing

        class _StopOnRegex(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                texts = tokenizer.batch_decode(input_ids[:, prompt_width:], skip_special_tokens=True)
                return torch.tensor([bool(pattern.search(t)) for t in texts], device=input_ids.device)

        return StoppingCriteriaList([_StopOnRegex()])
