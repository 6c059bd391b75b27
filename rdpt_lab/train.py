"""LoRA supervised fine-tuning of the student on teacher responses (loss on response tokens only).

Plain PyTorch + peft: a researcher can read the whole loop. The student's context is rendered
exactly as the scoring engine renders it (``HFBackend.render_context`` / ``encode``), so what
the distilled model learned is what provenance tracing later measures.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rdpt_core.backends import create_backend
from rdpt_core.backends.hf import HFBackend
from rdpt_core.models import ModelSpec


def hf_backend(spec: ModelSpec, purpose: str) -> HFBackend:
    """The spec's backend, which must be the Hugging Face one: the lab trains and samples through
    transformers (``purpose`` says what for, in the error)."""
    backend = create_backend(spec)
    if not isinstance(backend, HFBackend):
        raise TypeError(f"{purpose} needs the 'hf' backend, got {type(backend).__name__}")
    return backend


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    learning_rate: float = 3e-4
    epochs: int = 2
    batch_size: int = 8
    warmup_steps: int = 5
    weight_decay: float = 0.0
    max_length: int = 384
    seed: int = 0
    save_dtype: str = "float32"  # "bfloat16" halves the adapter file (committed adapters ≤ 20 MB)
    checkpoint_every: int = 0  # steps between resumable checkpoints (0: none)

    def to_dict(self) -> dict:
        return {**asdict(self), "target_modules": list(self.target_modules)}


def _examples(backend: HFBackend, pairs: Sequence[tuple[str, str]], max_length: int) -> list[tuple[list[int], int]]:
    """(ids, n_context_ids) per (prompt, response); responses end with EOS so D learns to stop."""
    eos = backend.tokenizer.eos_token or ""
    out = []
    for prompt, response in pairs:
        context = backend.render_context(prompt)
        ids, offsets, _ = backend.encode(context, response + eos)
        n_context = int(sum(1 for s, e in offsets if e <= len(context)))
        out.append((ids[:max_length], n_context))
    return out


def _batch_loss(model, batch: list[tuple[list[int], int]], pad_id: int):
    """Mean cross-entropy over response tokens; lm_head only where a label exists."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in batch])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
    # position t predicts token t+1: a label at t exists when t+1 is a response token
    labelled = torch.zeros(len(batch), width, dtype=torch.bool)
    for row, (ids, n_ctx) in enumerate(batch):
        labelled[row, max(n_ctx - 1, 0) : len(ids) - 1] = True
    targets = torch.roll(input_ids, -1, dims=1)[labelled]
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state
    logits = model.get_output_embeddings()(hidden[labelled]).float()
    return torch.nn.functional.cross_entropy(logits, targets), int(labelled.sum())


def _order(n_examples: int, seed: int, epoch: int) -> list[int]:
    """The examples' order in ``epoch``: a function of the seed and epoch only, so a resumed run
    sees the batches an uninterrupted one would."""
    order = list(range(n_examples))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def _checkpoint_path(out_dir: Path) -> Path:
    return out_dir.with_name(out_dir.name + ".checkpoint.pt")


def _save_checkpoint(path: Path, model, optimizer, schedule, step: int, history: list[float], seconds: float,
                     settings: LoraSettings) -> None:
    import torch
    from peft import get_peft_model_state_dict

    path.parent.mkdir(parents=True, exist_ok=True)  # the first checkpoint may come before the adapter's folder
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "history": history, "seconds": seconds, "settings": settings.to_dict(),
                "adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(path)


def train_lora(
    student: HFBackend, pairs: Sequence[tuple[str, str]], settings: LoraSettings, out_dir: Path,
    log: Callable[[str], None] = print,
) -> dict:
    """Fine-tune ``student`` with a LoRA adapter on ``pairs`` and save the adapter to ``out_dir``.
    With ``settings.checkpoint_every``, a checkpoint next to ``out_dir`` lets an interrupted run
    resume where it stopped (same settings only); it is removed once the adapter is saved."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    torch.manual_seed(settings.seed)
    student.load()
    model = get_peft_model(student._model, LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules), task_type="CAUSAL_LM",
    ))
    model.train()
    examples = _examples(student, pairs, settings.max_length)
    steps_per_epoch = math.ceil(len(examples) / settings.batch_size)
    total_steps = max(steps_per_epoch * settings.epochs, 1)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / settings.warmup_steps)
        * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)),
    )
    pad_id = student.tokenizer.pad_token_id or 0
    history: list[float] = []
    step, earlier_seconds = 0, 0.0
    checkpoint = _checkpoint_path(out_dir)
    if settings.checkpoint_every and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["settings"] != settings.to_dict():
            raise RuntimeError(f"{checkpoint} was written with other settings: delete it to start over")
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        step, history, earlier_seconds = state["step"], state["history"], state["seconds"]
        log(f"  resuming at step {step}/{total_steps} from {checkpoint}")
    started = time.perf_counter() - earlier_seconds
    for epoch in range(settings.epochs):
        order = _order(len(examples), settings.seed, epoch)
        for batch_index, lo in enumerate(range(0, len(order), settings.batch_size)):
            if epoch * steps_per_epoch + batch_index < step:
                continue  # done before the checkpoint
            batch = [examples[i] for i in order[lo : lo + settings.batch_size]]
            loss, n_labels = _batch_loss(model, batch, pad_id)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.append(round(loss.item(), 4))
            if step % 10 == 0 or step == total_steps:
                log(f"  step {step}/{total_steps} epoch {epoch + 1} loss {loss.item():.3f} "
                    f"({time.perf_counter() - started:.0f} s)")
            if settings.checkpoint_every and step % settings.checkpoint_every == 0 and step < total_steps:
                _save_checkpoint(checkpoint, model, optimizer, schedule, step, history,
                                 time.perf_counter() - started, settings)
    if settings.save_dtype != "float32":
        model.to(getattr(torch, settings.save_dtype))  # the adapter's weights; training is over
    model.save_pretrained(str(out_dir))  # peft takes a str path
    # peft's model-card template is not committed, and every file of an adapter dir is part of
    # its fingerprint: scores made beside it would not be found in a clean clone without it
    (out_dir / "README.md").unlink(missing_ok=True)
    checkpoint.unlink(missing_ok=True)
    trainable = sum(p.numel() for p in params)
    student.unload()
    return {"steps": step, "examples": len(examples), "trainable_params": trainable,
            "loss_first": history[0], "loss_last": history[-1], "loss_history": history,
            "seconds": round(time.perf_counter() - started, 1)}
