"""Benchmarks and `actavatar eval --checkpoint`: synthetic corpus -> benchmark folder, exact action reader."""

from __future__ import annotations

import json
import shutil

import pytest

from dataset.media import probe_mp4
from evaluation.benchmark import BenchmarkConfig, jobs_from_benchmark, synth_to_benchmark
from evaluation.cli import main


@pytest.fixture(scope="module")
def bench(synth_corpus, tmp_path_factory):
    return synth_to_benchmark(synth_corpus, tmp_path_factory.mktemp("bench"))  # one clip per avatar shot


def _shuffled(bench, out):
    """A copy of the benchmark whose phase labels are permuted cyclically: no phase keeps its label."""
    out.mkdir()
    anns = {p: json.loads(p.read_text()) for p in sorted(bench.glob("*.json"))}
    labels = sorted({ph["label"] for a in anns.values() for ph in a["caption"]["phases"]})
    assert len(labels) >= 2
    move = dict(zip(labels, labels[1:] + labels[:1]))
    for path, ann in anns.items():
        for ph in ann["caption"]["phases"]:
            ph["label"] = move[ph["label"]]
        (out / path.name).write_text(json.dumps(ann))
        shutil.copy(bench / f"{path.stem}.mp4", out / f"{path.stem}.mp4")
    return out


def _eval_actions(generated, reference, out):
    assert main(["--generated", f"run={generated}", "--reference", str(reference), "--out", str(out),
                 "--metrics", "actions", "--actions", "synthetic"]) == 0
    return json.loads((out / "report.json").read_text())


def test_synth_benchmark_folder(bench, synth_corpus):
    truth = [json.loads(line) for line in (synth_corpus / "truth.jsonl").read_text().splitlines()]
    jobs = jobs_from_benchmark(bench)
    assert len(jobs) == sum(1 for r in truth for s in r["shots"] if s["avatar_present"] and s["phases"])
    for job in jobs:
        ann = json.loads((bench / f"{job.key}.json").read_text())
        info = probe_mp4((bench / f"{job.key}.mp4").read_bytes())
        assert info.has_audio and info.num_frames == ann["video"]["num_frames"]
        assert job.image == bench / f"{job.key}.png" and job.audio == bench / f"{job.key}.wav"
        assert all("label" in p for p in job.caption["phases"]) and job.caption["phases"][0]["start_s"] == 0.0
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        BenchmarkConfig(max_frames=16)


def test_exact_reader_scores_truth_high_and_shuffled_phases_low(bench, tmp_path):
    report = _eval_actions(bench, bench, tmp_path / "truth")
    metrics = report["metrics"]["run"]
    assert metrics["phase_accuracy"] >= 0.95 and metrics["temporal_precision"] >= 0.9, metrics
    assert "exact reader" in report["protocol"]["actions"]["detector"]
    assert (tmp_path / "truth" / "plots").is_dir()
    shuffled = _eval_actions(bench, _shuffled(bench, tmp_path / "shuffled_ref"), tmp_path / "shuffled")["metrics"]["run"]
    assert shuffled["phase_accuracy"] <= 0.25 < metrics["phase_accuracy"] - 0.7, shuffled


def test_eval_two_checkpoints_on_a_synthetic_benchmark(synth_corpus, tiny_models, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["--checkpoint", f"full={tiny_models}", "--checkpoint", f"dit_only={tiny_models / 'dit'}",
               "--benchmark", str(synth_corpus), "--out", str(out), "--actions", "synthetic", "--no-progress",
               "--metrics", "actions",
               "benchmark.max_frames=9", "benchmark.max_clips=2", "sample.width=32", "sample.height=32",
               "sample.sampler.steps=1", "sample.sampler.solver=euler", "sample.threads=1"])
    assert rc == 0
    assert "| full |" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert set(report["metrics"]) == {"full", "dit_only"}
    assert report["metrics"]["full"]["num_videos"] == 2 and "phase_accuracy" in report["metrics"]["full"]
    assert report["metrics"]["full"] == report["metrics"]["dit_only"]  # same weights and seeds, same videos
    sampling = report["protocol"]["sampling"]["full"]
    assert sampling["clips"] == 2 and sampling["sampler"]["steps"] == 1 and sampling["reference_mode"] == "ti2v"
    assert len(list((out / "benchmark").glob("*.json"))) == 2 and (out / "benchmark" / ".synth_benchmark").is_file()
    for run in ("full", "dit_only"):
        videos = sorted((out / "samples" / run).glob("*.mp4"))
        assert len(videos) == 2 and all(probe_mp4(v.read_bytes()).has_audio for v in videos)


def test_eval_flag_combinations_are_checked(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 2
    assert "give --generated" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--checkpoint needs --benchmark" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path), "--benchmark", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no reference videos" in capsys.readouterr().err
    (tmp_path / "out" / "benchmark").mkdir(parents=True)
    (tmp_path / "out" / "benchmark" / "mine.txt").write_text("user data")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "truth.jsonl").write_text("")
    assert main(["--checkpoint", str(tmp_path), "--benchmark", str(tmp_path / "corpus"), "--out", str(tmp_path / "out")]) == 2
    assert "not written by a benchmark conversion" in capsys.readouterr().err


def test_benchmark_from_webdataset_shards(toy_corpus, tmp_path):
    """A `data run`-style corpus of shards becomes a benchmark folder (`--benchmark CORPUS`)."""
    import tarfile

    from evaluation.benchmark import is_shard_corpus, prepare_benchmark

    assert is_shard_corpus(toy_corpus) and is_shard_corpus(toy_corpus / "shards" / "shard-000000.tar")
    folder = prepare_benchmark(toy_corpus, tmp_path / "a")
    jobs = jobs_from_benchmark(folder)
    assert [j.key for j in jobs] == sorted(j.key for j in jobs) and len(jobs) == 6
    assert all((folder / f"{j.key}.wav").is_file() and j.caption["phases"] for j in jobs)
    assert len(jobs_from_benchmark(prepare_benchmark(toy_corpus, tmp_path / "b", BenchmarkConfig(max_clips=2)))) == 2
    out = tmp_path / "report"
    assert main(["--generated", f"run={folder}", "--benchmark", str(toy_corpus), "--out", str(out), "--metrics", "actions",
                 "--actions", "synthetic"]) == 0
    assert json.loads((out / "report.json").read_text())["metrics"]["run"]["num_videos"] == 6
    evil = tmp_path / "evil.tar"  # a member name that would escape the benchmark folder
    with tarfile.open(evil, "w") as tar:
        for name in ("../../escape.json", "../../escape.mp4"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, __import__("io").BytesIO(b"{}"))
    with pytest.raises(ValueError, match="is not <source_id>_<clip>"):
        prepare_benchmark(evil, tmp_path / "c")
    assert not (tmp_path.parent / "escape.json").exists()


def test_shard_benchmark_windows(toy_corpus, tmp_path):
    """benchmark.max_frames cuts each shard clip into consecutive windows, phases moved to window time."""
    from dataset.media import decode_mp4, decode_wav
    from evaluation.benchmark import prepare_benchmark
    from dataset.reader import shard_pipeline

    folder = prepare_benchmark(toy_corpus, tmp_path, BenchmarkConfig(max_frames=17))
    clips = {s["__key__"]: s for s in shard_pipeline(toy_corpus)}
    keys = sorted(p.stem for p in folder.glob("*.json"))
    expected = sorted(f"{k}_w{a:04d}" for k, s in clips.items() for a in range(0, s["frames"].shape[0] - 17 + 1, 17))
    assert keys == expected and keys
    for key in keys:
        clip_key, first = key.rsplit("_w", 1)
        first = int(first)
        clip = clips[clip_key]
        ann = json.loads((folder / f"{key}.json").read_text())
        assert ann["key"] == key and ann["video"]["num_frames"] == 17 and ann["source"]["start_frame"] == first
        frames = decode_mp4((folder / f"{key}.mp4").read_bytes())
        assert frames.shape[0] == 17
        # the window's frames are the clip's (re-encoded: close, not identical)
        assert abs(frames.astype(int) - clip["frames"].numpy()[first:first + 17].astype(int)).mean() < 12
        wav, rate = decode_wav((folder / f"{key}.wav").read_bytes())
        assert rate == 16000 and wav.size == ann["audio"]["num_samples"] == round(17 / 25 * 16000)
        t0, t1 = first / 25, (first + 17) / 25
        truth = [(max(p["start_s"], t0) - t0, min(p["end_s"], t1) - t0, p["text"])
                 for p in clip["annotation"]["caption"]["phases"] if min(p["end_s"], t1) > max(p["start_s"], t0) + 1e-6]
        got = [(p["start_s"], p["end_s"], p["text"]) for p in ann["caption"]["phases"]]
        assert len(got) == len(truth)
        for (a, b, text), (c, d, text2) in zip(got, truth):
            assert abs(a - c) < 1e-5 and abs(b - d) < 1e-5 and text == text2
    assert len(jobs_from_benchmark(folder)) == len(keys)
