"""Two ranks on CPU (gloo, FSDP2): Ray Train and `torchrun` runs of stage 1 and 2 (with LoRA); a run
interrupted under Ray Train and resumed under torchrun is bit-identical to an uninterrupted torchrun run
(so the launchers agree too; a Ray Train launch costs ~40 s here, torchrun ~14 s, hence one of each)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _torchrun(config: str, overrides: list[str]) -> None:
    """`torchrun --nproc-per-node 2 -m train.cli` (a Ray Train launch costs ~40 s here, torchrun ~14 s)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", f"--master-port={port}",
                           "-m", "train.cli", "--config", config, *overrides],
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_ranks_resume_exactly_under_ray_train_and_torchrun(ray_session, latents, tmp_path):
    import torch

    from train.launch import launch
    from train.pretrained import load_dit

    config = str(ROOT / "configs/train/stage1_debug.yaml")
    common = [f"data.shards={latents}", "data.kind=latents", "log.progress=false", "log.tensorboard=false", "log.every=1",
              "data.num_workers=0", "parallel.fsdp=fsdp2", "parallel.activation_checkpointing=true",
              "optim.schedule=constant", "optim.warmup_steps=0", "checkpoint.every=0"]
    once, twice = tmp_path / "once", tmp_path / "twice"
    _torchrun(config, [*common, f"output_dir={once}", "steps=4"])
    launch(config, [*common, f"output_dir={twice}", "steps=2"], num_workers=2, use_gpu=False)  # "interrupted" at step 2
    assert (twice / "checkpoints/latest").read_text().strip() == "step-000002"
    assert len(list((twice / "checkpoints/step-000002").glob("*.distcp"))) == 2  # one shard file per rank
    _torchrun(config, [*common, f"output_dir={twice}", "steps=4"])  # resumes at step 2, under torchrun
    losses = _losses(once)
    assert [s for s, _ in losses] == [1, 2, 3, 4] and losses == _losses(twice)
    for name in ("final", "ema"):  # weights and EMA bit-identical to the uninterrupted run
        a, b = _weights(once / name), _weights(twice / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name

    # stage 2 with LoRA adapters, sharded over the two ranks: merged export + diffusers-format adapters
    s2 = tmp_path / "s2"
    _torchrun(str(ROOT / "configs/train/stage2_debug.yaml"),
              [*common, f"output_dir={s2}", "steps=2", f"model.init_from={once}/ema", "lora.rank=4"])
    assert [s for s, _ in _losses(s2)] == [1, 2]
    load_dit(s2 / "final")
    assert (s2 / "final/lora/pytorch_lora_weights.safetensors").is_file()
