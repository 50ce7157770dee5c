"""The per-GPU memory estimate counts what the trainer would hold."""

import pytest

pytest.importorskip("peft")

from model.registry import FLAVORS, build_model  # noqa: E402
from train.lora import LoraConfig, add_lora, is_lora_parameter  # noqa: E402
from train.memory import GB, estimate, main  # noqa: E402


def test_counts_and_rows_follow_the_model(capsys):
    full = estimate("debug", gpus=2, frames=9, height=64, width=64, media=False)
    model = build_model(FLAVORS["debug"]())
    assert full.params == full.trainable == sum(p.numel() for p in model.parameters())
    assert full.rows["trainable: weight, grad, AdamW, EMA (fp32, sharded)"] == pytest.approx(20 * full.params / 2 / GB)
    lora = estimate("debug", gpus=2, frames=9, height=64, width=64, lora_rank=4)
    new = model.new_parameter_prefixes()
    add_lora(model, LoraConfig(rank=4))
    expected = sum(p.numel() for n, p in model.named_parameters() if is_lora_parameter(n) or n.startswith(new))
    assert lora.trainable == expected < lora.params and "encoders (bf16, media shards)" in lora.rows
    tokens = 3 * 4 * 4  # 9 x 64 x 64 -> 3 x 8 x 8 latents -> 3 x 4 x 4 patches
    assert full.rows["activations (checkpointed block inputs)"] == pytest.approx(2 * tokens * 64 * 2 / GB)
    assert lora.total == pytest.approx(sum(lora.rows.values()))
    assert main(["--flavor", "debug", "--gpus", "1", "--frames", "9", "--height", "64", "--width", "64"]) == 0
    assert "total per GPU" in capsys.readouterr().out
