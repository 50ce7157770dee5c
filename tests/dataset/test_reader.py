from __future__ import annotations

import json
import subprocess
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds

from dataset.media import decode_mp4, decode_wav
from dataset.reader import SampleDecoder, list_shards, shard_pipeline
from dataset.toy_corpus import toy_clip
from dataset.writer import ShardWriter, ShardWriterConfig


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt") / "corpus"
    clips = [toy_clip(i, seconds=0.8, width=48, height=32, seed=3) for i in range(5)]
    with ShardWriter(root, ShardWriterConfig(max_samples=2)) as writer:
        for clip in clips:
            writer.write(clip)
    return root, {c["__key__"]: c for c in clips}


def test_round_trip_our_reader_plain_webdataset_and_tar_agree(written):
    root, originals = written
    ours = {s["__key__"]: s for s in shard_pipeline(root, decode="full")}
    plain = {s["__key__"]: s for s in wds.WebDataset(list_shards(root), shardshuffle=False)}
    assert set(ours) == set(plain) == set(originals)
    for key, original in originals.items():
        sample = ours[key]
        # JSON: identical to what was written, through both readers
        assert sample["annotation"] == original["json"] == json.loads(plain[key]["json"])
        # Frames: decoding the original bytes, the plain-webdataset bytes and our reader agree exactly
        assert plain[key]["mp4"] == original["mp4"]
        expected = decode_mp4(original["mp4"])
        assert sample["frames"].dtype == torch.uint8 and sample["frames"].shape == (20, 32, 48, 3)
        assert np.array_equal(sample["frames"].numpy(), expected)
        # Audio: lossless PCM16, float32 at 16 kHz, same samples
        audio, rate = decode_wav(plain[key]["wav"])
        assert rate == 16000 and sample["audio"].dtype == torch.float32
        assert np.array_equal(sample["audio"].numpy(), audio)
        assert len(audio) == original["json"]["audio"]["num_samples"]


def test_shards_read_with_the_tar_command(written):
    root, originals = written
    names = []
    for shard in list_shards(root):
        out = subprocess.run(["tar", "tf", shard], check=True, capture_output=True, text=True).stdout
        names += out.split()
    assert sorted(names) == sorted(f"{k}.{ext}" for k in originals for ext in ("json", "mp4", "wav"))
    with tarfile.open(list_shards(root)[0]) as tar:
        member = tar.getmember(names[0])
        assert member.mtime == 0 and member.uname == ""


def test_dataloader_with_workers_sees_every_sample_once(written):
    root, originals = written
    loader = torch.utils.data.DataLoader(shard_pipeline(root, decode="full"), batch_size=None, num_workers=2)
    keys = [sample["__key__"] for sample in loader]
    assert sorted(keys) == sorted(originals)


def test_annotation_mode_reads_only_json(written):
    root, originals = written
    samples = list(shard_pipeline(root, decode="annotation"))
    assert {s["__key__"] for s in samples} == set(originals)
    assert all(set(s) == {"__key__", "__url__", "annotation"} for s in samples)


def test_composes_with_webdataset_stages(written):
    root, originals = written

    def lengths(s):
        return s["__key__"], s["frames"].shape[0], s["audio"].shape[0]

    pipe = shard_pipeline(root, shuffle_shards=True, shuffle_buffer=4, seed=7, stages=[wds.map(lengths)])
    pipe.append(wds.batched(2, collation_fn=list))
    batches = list(pipe)
    flat = [item for batch in batches for item in batch]
    assert sorted(k for k, _, _ in flat) == sorted(originals)
    assert all(frames == 20 and samples == 12800 for _, frames, samples in flat)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_broken_sample_is_skipped_and_reported(tmp_path, written, caplog):
    root, originals = written
    shard = tmp_path / "shard-000000.tar"
    key = next(iter(originals))
    with wds.TarWriter(str(shard)) as tar:
        tar.write({"__key__": key, "json": b"{broken", "mp4": b"", "wav": b""})
        tar.write(originals[list(originals)[1]] | {"json": json.dumps(originals[list(originals)[1]]["json"]).encode()})
    samples = list(shard_pipeline(str(shard)))
    assert [s["__key__"] for s in samples] == [list(originals)[1]]
    assert "not valid JSON" in caplog.text and key in caplog.text


def test_decoder_errors_name_the_sample():
    with pytest.raises(ValueError, match=r"sample abc: missing member \.mp4"):
        SampleDecoder()({"__key__": "abc", "__url__": "x.tar", "json": b"{}"})


def test_list_shards_forms(written, tmp_path):
    root, _ = written
    shards = list_shards(root)
    assert len(shards) == 3 and shards == sorted(shards)
    assert list_shards(root / "shards") == shards
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(shards) + "\n")
    assert list_shards(listing) == shards
    assert list_shards(str(root / "shards" / "shard-00000[01].tar")) == shards[:2]
    assert list_shards("s3://bucket/shard-{000000..000002}.tar")[-1] == "s3://bucket/shard-000002.tar"
    with pytest.raises(FileNotFoundError, match="no shards found"):
        list_shards(tmp_path / "missing-*.tar")


def test_streaming_urls_use_webdataset_expansion(written):
    root, originals = written
    urls = [f"pipe:cat {shard}" for shard in list_shards(root)]
    samples = list(shard_pipeline(urls, decode="annotation"))
    assert sorted(s["__key__"] for s in samples) == sorted(originals)
    assert all(s["annotation"] == originals[s["__key__"]]["json"] for s in samples)
