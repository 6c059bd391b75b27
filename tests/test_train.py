"""LoRA training of the lab (rdpt_lab/train.py): the response-only loss."""

import torch

from rdpt_lab.train import _batch_loss


def test_response_only_loss_equals_transformers_masked_loss():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
    )).eval()
    batch = [([5, 6, 7, 8, 9, 10], 3), ([11, 12, 13, 14], 2), ([20, 21, 22, 23, 24, 25, 26, 27], 5)]
    width = 8
    ids = torch.tensor([x + [0] * (width - len(x)) for x, _ in batch])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
    labels = torch.tensor([[t if n_ctx <= i < len(x) else -100 for i, t in enumerate(x + [0] * (width - len(x)))]
                           for x, n_ctx in batch])
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        got, n_labels = _batch_loss(model, batch, pad_id=0)
    assert n_labels == (6 - 3) + (4 - 2) + (8 - 5)
    assert torch.allclose(got, want, atol=1e-6)
