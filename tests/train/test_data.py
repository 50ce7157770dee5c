"""Data stream: reader split, deterministic replay of the data position with DataLoader workers,
phase mixture, latent shards."""

from itertools import islice

import torch

from train.buckets import parse_buckets
from train.data import ClipStream, DataConfig, build_loader, worker_skip


def test_worker_skip_round_robin():
    # 7 batches consumed from 3 workers: worker 0 gave 0,3,6; worker 1 gave 1,4; worker 2 gave 2,5
    assert [worker_skip(7, w, 3) for w in range(3)] == [3, 2, 2]
    assert worker_skip(5, 0, 0) == 5


def _keys(latents, start, n, workers=2, **kw):
    cfg = DataConfig(shards=str(latents), kind="latents", buckets=("9x32x32",), batch_size=2, num_workers=workers, **kw)
    stream = ClipStream(cfg, parse_buckets(cfg.buckets), start_batch=start)
    return [tuple(b["key"]) for b in islice(build_loader(stream, cfg), n)]


def test_resume_replays_the_same_batches_with_workers(latents):
    full = _keys(latents, 0, 8)
    assert _keys(latents, 3, 5) == full[3:]
    assert len(set(full[:2])) == 2  # 8 samples, 2 per batch: epochs continue past 4 batches


def test_ranks_read_disjoint_shards(latents):
    cfg = DataConfig(shards=str(latents), kind="latents", buckets=("9x32x32",), batch_size=1, shuffle_buffer=0)
    seen = []
    for rank in range(2):
        stream = ClipStream(cfg, parse_buckets(cfg.buckets), rank=rank, world_size=2)
        seen.append({b["key"][0] for b in islice(iter(stream), 4)})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 8


def test_phase_mixture_and_latent_blocks(latents):
    cfg = DataConfig(shards=str(latents), kind="latents", buckets=("9x32x32",), batch_size=1, phase_prob=1.0)
    batch = next(iter(ClipStream(cfg, parse_buckets(cfg.buckets))))
    texts, blocks = batch["texts"][0], batch["text_blocks"][0]
    assert len(texts) > 1 and len(blocks) == len(texts)  # base + phases, one cached block each
    assert batch["latents"].shape[:3] == (1, 4, 3) and batch["audio_features"].dtype == torch.float32
    base_only = next(iter(ClipStream(DataConfig(shards=str(latents), kind="latents", phase_prob=0.0), parse_buckets(("9x32x32",)))))
    assert len(base_only["texts"][0]) == 1 and len(base_only["text_blocks"][0]) == 1


def _damaged_copy(latents, out, broken: int):
    """The latent shards with the `latents.npy` of the first `broken` samples replaced by junk bytes."""
    import io
    import shutil
    import tarfile

    from dataset.reader import list_shards

    shutil.copytree(latents, out)
    damaged = []
    for shard in sorted(list_shards(str(out))):
        with tarfile.open(shard) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(shard, "w") as tar:
            for member, data in members:
                if member.name.endswith(".latents.npy") and len(damaged) < broken:
                    damaged.append(member.name.split(".")[0])
                    data = b"not a numpy file"
                    member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    return damaged


def test_a_bad_sample_is_skipped_and_counted_too_many_stop_the_run(latents, tmp_path, caplog):
    bad = _damaged_copy(latents, tmp_path / "one_bad", broken=1)
    cfg = DataConfig(shards=str(tmp_path / "one_bad"), kind="latents", buckets=("9x32x32",), batch_size=2, shuffle_buffer=0,
                     max_bad_fraction=0.2)
    stream = ClipStream(cfg, parse_buckets(cfg.buckets))
    keys = [k for b in islice(iter(stream), 30) for k in b["key"]]
    assert bad[0] not in keys and len(set(keys)) == 7  # the other 7 clips keep coming, epoch after epoch
    assert stream.bad >= 1 and stream.seen > stream.bad and f"skipping sample {bad[0]}" in caplog.text
    _damaged_copy(latents, tmp_path / "all_bad", broken=8)
    broken = ClipStream(DataConfig(shards=str(tmp_path / "all_bad"), kind="latents", buckets=("9x32x32",)), parse_buckets(("9x32x32",)))
    import pytest

    with pytest.raises(ValueError, match=r"20 of 20 samples could not be decoded \(more than data.max_bad_fraction=0.01\)"):
        next(iter(broken))
