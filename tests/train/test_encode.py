"""`actavatar encode`: one window per clip by default, several with --windows-per-clip, and the
negative prompt's features for guidance dropout."""

import io
import json
import tarfile

import numpy as np
import torch

from tests.train.conftest import encoder_overrides
from train.buckets import parse_buckets
from train.data import ClipStream, DataConfig, first_window
from train.encode import window_starts


def test_window_starts():
    assert window_starts(30, 9) == [0]
    assert window_starts(30, 9, count=0) == [0, 9, 18]
    assert window_starts(30, 9, count=0, stride=8) == [0, 8, 16]
    assert window_starts(30, 9, count=2, stride=4) == [0, 4]
    assert window_starts(9, 9, count=0) == [0] and window_starts(8, 9, count=0) == []


def _members(root):
    out = {}
    for shard in sorted((root / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar:
                key, _, ext = m.name.partition(".")
                out.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return out


def test_default_keeps_one_window_per_clip_with_its_key(latents, tiny_encoders):
    samples = _members(latents)
    assert len(samples) == 8 and all("_w" not in k for k in samples)
    window = json.loads(next(iter(samples.values()))["window.json"])
    assert window["start_frame"] == 0 and window["negative_prompt"] == ""
    assert window["encoders"] == {"text": f"{tiny_encoders}/umt5", "vae": f"{tiny_encoders}/vae", "audio": f"{tiny_encoders}/wav2vec2"}
    assert first_window([str(p) for p in sorted((latents / "shards").glob("*.tar"))])["negative_prompt"] == ""


def test_several_windows_per_clip(corpus, tiny_encoders, tmp_path):
    from train.encode_cli import main
    from train.pretrained import load_text_encoder

    out = tmp_path / "latents"
    argv = ["--config", "configs/train/stage1_debug.yaml", "--out", str(out), "--max-samples", "4", "--windows-per-clip", "0",
            "--window-stride", "8", "--batch-size", "2", f"data.shards={corpus}", "data.buckets=[9x32x32]",
            "guidance.negative_prompt=blurry", *encoder_overrides(tiny_encoders)]
    assert main(argv) == 0
    samples = _members(out)
    # 1.2 s clips = 30 frames: 9-frame windows start at 0, 8, 16
    assert len(samples) == 8 * 3
    clip = sorted(samples)[0].rsplit("_w", 1)[0]
    starts = [json.loads(samples[f"{clip}_w{i:04d}"]["window.json"])["start_frame"] for i in range(3)]
    assert starts == [0, 8, 16]
    first = samples[f"{clip}_w0000"]
    assert json.loads(first["json"])["key"] == clip  # the clip's annotation, unchanged
    negative = np.load(io.BytesIO(first["negative.npy"]))
    text = load_text_encoder(f"{tiny_encoders}/umt5", local_files_only=True, max_length=64, max_base_tokens=24)
    assert np.array_equal(negative, text.encode_base("blurry").numpy())
    # the trainer reads the windows as separate samples, each with its own start frame
    cfg = DataConfig(shards=str(out), kind="latents", buckets=("9x32x32",), batch_size=1, shuffle_buffer=0)
    batch = next(iter(ClipStream(cfg, parse_buckets(cfg.buckets))))
    assert batch["negative_prompt"] == ["blurry"] and torch.equal(batch["negative"][0], torch.from_numpy(negative))
