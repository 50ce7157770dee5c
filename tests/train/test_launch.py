"""Ray Train: a 2-worker CPU run (gloo, FSDP2) of stage 1 then stage 2 on the tiny model."""

import json

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_workers_both_stages_with_fsdp(ray_session, latents, tmp_path):
    from train.launch import launch
    from train.pretrained import load_dit

    common = [f"data.shards={latents}", "data.kind=latents", "log.progress=false", "log.tensorboard=false",
              "data.num_workers=0", "parallel.fsdp=fsdp2", "parallel.activation_checkpointing=true"]
    s1 = tmp_path / "s1"
    launch("configs/train/stage1_debug.yaml", [*common, f"output_dir={s1}", "steps=2"], num_workers=2, use_gpu=False)
    rows = [json.loads(line) for line in (s1 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[-1]["loss"] > 0
    assert (s1 / "checkpoints/latest").read_text().strip() == "step-000002"
    assert len(list((s1 / "checkpoints/step-000002").glob("*.distcp"))) == 2  # one shard file per rank
    load_dit(s1 / "ema")
    s2 = tmp_path / "s2"
    launch("configs/train/stage2_debug.yaml", [*common, f"output_dir={s2}", "steps=2", f"model.init_from={s1}/ema"],
           num_workers=2, use_gpu=False)
    rows = [json.loads(line) for line in (s2 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    load_dit(s2 / "final")
