"""`actavatar eval` smoke tests on tiny synthetic videos with random-weight networks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dataset.media import encode_mp4
from evaluation.cli import main
from evaluation.config import EvalConfig
from evaluation.suite import evaluate_folders


def _write_clip(folder, key, seed, frames=12, shift=0, audio=True):
    rng = np.random.default_rng(seed)
    base = rng.uniform(60, 190, size=(1, 4, 4, 3)) + shift
    motion = np.linspace(0, 20, frames)[:, None, None, None]
    video = np.clip(np.repeat(np.repeat(base + motion, 8, 1), 8, 2), 0, 255).astype(np.uint8)  # (T, 32, 32, 3)
    wav = (0.2 * np.sin(2 * np.pi * 200 * np.arange(frames * 640) / 16000)).astype(np.float32) if audio else None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.mp4").write_bytes(encode_mp4(video, wav))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_videos")
    for i, key in enumerate(("a_0000", "b_0001")):
        _write_clip(root / "ref", key, seed=i)
        _write_clip(root / "good", key, seed=i)
        _write_clip(root / "bad", key, seed=10 + i, shift=50)
    _write_clip(root / "good", "extra_0002", seed=5)  # no reference: reported, not scored
    return root


def test_eval_all_metrics_two_runs_side_by_side(folders, tiny_weights, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main([
        "--generated", str(folders / "good"), "--generated", f"shifted={folders / 'bad'}", "--reference", str(folders / "ref"),
        "--out", str(out), "--fid-weights", str(tiny_weights["fid_weights"]), "--i3d", str(tiny_weights["i3d"]),
        "--syncnet", str(tiny_weights["syncnet"]), "--face-embedder", str(tiny_weights["face_embedder"]),
        "--face-crop", "whole_frame",  # block-colour videos have no face to track
        "fid.dims=64", "fid.frame_stride=4", "fvd.num_frames=10", "fvd.start=0", "sync.batch_size=8",
    ])
    assert rc == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "| good |" in printed and "| shifted |" in printed and "actions: no action scorer" in printed
    # progress (clips, rate, ETA) for the reference statistics and for each run's scoring
    assert "reference FID+FVD statistics: 100%" in captured.err and "shifted: fid,fvd,sync,identity: 100%" in captured.err
    report = json.loads((out / "report.json").read_text())
    good, shifted = report["metrics"]["good"], report["metrics"]["shifted"]
    for metric in ("fid", "fvd", "sync_c", "sync_d", "identity"):
        assert np.isfinite(good[metric]) and np.isfinite(shifted[metric]), metric
    assert abs(good["fid"]) < 1e-3 < shifted["fid"]  # same encoded frames as the references
    assert abs(good["fvd"]) < 1e-2 * shifted["fvd"]
    assert -1.0 <= shifted["identity"] <= good["identity"] <= 1.0 + 1e-6  # reference = first frame of the reference video
    assert set(report["skipped"]["good"]) == {"actions"}
    assert report["details"]["good"]["unmatched_generated"] == ["extra_0002"]
    assert report["details"]["good"]["fvd"]["num_real_clips"] == 2 and report["details"]["good"]["fvd"]["num_frames"] == 10
    assert len(report["details"]["good"]["sync"]["offsets"]) == 2
    assert set(report["per_clip"]["good"]["a_0000"]) >= {"av_offset", "sync_c", "sync_d", "identity"}
    assert report["per_clip"]["good"]["a_0000"]["identity_reference"] == "a_0000.mp4 frame 0"
    assert "antialias=False" in report["protocol"]["fid"]["resize"] and report["protocol"]["sync"]["offsets"] == 31
    assert report["protocol"]["faces"]["crop"] == report["protocol"]["sync"]["faces"] == "whole_frame"
    assert report["protocol"]["fvd"]["start"] == "every clip at frame 0" and report["protocol"]["fvd"]["max_clips"] == 2048
    assert (out / "report.md").is_file() and (out / "plots" / "metric_fid.png").is_file()


def test_eval_without_weights_skips_everything_and_says_why(folders, tmp_path, capsys):
    rc = main(["--generated", str(folders / "good"), "--reference", str(folders / "ref"), "--out", str(tmp_path),
               "--metrics", "fid,sync"])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["skipped"]["good"] == {"fid": "no weights given (--fid-weights / fid_weights)",
                                         "sync": "no weights given (--syncnet / syncnet)"}
    assert "- fid: no weights given" in capsys.readouterr().out


def test_eval_bad_weights_path_is_a_one_line_error(folders, tmp_path, capsys):
    rc = main(["--generated", str(folders / "good"), "--reference", str(folders / "ref"), "--out", str(tmp_path),
               "--i3d", str(tmp_path / "nope.pt")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope.pt does not exist" in err and "i3d_torchscript.pt" in err
    assert main(["--generated", str(folders / "good"), "--reference", str(folders / "ref"), "--out", str(tmp_path),
                 "--metrics", "fid,bleu"]) == 2
    assert "metrics must be a non-empty subset" in capsys.readouterr().err


def test_actions_with_a_detector_callable_and_timelines(tmp_path):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    phases = [{"start_s": 0.0, "end_s": 0.2, "text": "raises hand"}, {"start_s": 0.2, "end_s": 0.48, "text": "nods"}]
    for key in ("k_0000", "k_0001"):
        _write_clip(ref, key, seed=1, audio=False)
        _write_clip(gen, key, seed=1, audio=False)
        (ref / f"{key}.json").write_text(json.dumps({"schema_version": 1, "caption": {"base": "x", "phases": phases}}))

    def detect(frames, fps):
        return ["raises hand" if t / fps < 0.2 else "nods" for t in range(len(frames))]

    report = evaluate_folders(EvalConfig(metrics=("actions",), timelines=1), {"run": gen}, ref, detect_actions=detect)
    assert report["metrics"]["run"]["phase_accuracy"] == 1.0
    assert report["metrics"]["run"]["temporal_precision"] == 1.0
    assert len(report["timelines"]) == 1 and report["timelines"][0]["phases"][1]["label"] == "nods"
