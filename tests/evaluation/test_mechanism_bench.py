"""`actavatar bench mechanism --scale smoke`: every step of the benchmark runs, resumes and reports.

The smoke scale trains for a few steps only: its numbers mean nothing, its structure is the full
benchmark's (both sampling variants, every metric, the chance level, the plots, the exported
checkpoints and the test benchmark that `actavatar eval` re-scores). The run here trains the arms
with steps of their own: (a) for the action scores, (e) motion control, (g) pose control and the
gesture-loudness step, (h) the long-video identity step, (j) the lip-sync step; (b), (c), (d), (f) and (i) differ
from (a) or (g) only in their train configs, which are checked without training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from actavatar.cli import main as actavatar
from dataset.errors import UserError
from evaluation.mechanism.config import ARMS, scale_config
from evaluation.mechanism.report import COLUMNS

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the synthetic corpus speaks with espeak-ng")


TRAINED = ("paca", "paca_motion", "paca_refocus", "paca_face", "paca_av")
# vae.mouth_weight: the VAE's lip-box loss runs on the reader's mouth keypoints of the synthetic corpus
COMMAND = ["bench", "mechanism", "--scale", "smoke", "--threads", "2", f"arms=[{','.join(TRAINED)}]", "vae.mouth_weight=8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mech") / "run"
    assert actavatar([*COMMAND, "--out", str(out)]) == 0
    return out


def test_report_names_every_arm_metric_and_chance(run: Path) -> None:
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["scale"] == "smoke" and set(report["arms"]) == set(TRAINED)
    rows = report["rows"]
    for arm in TRAINED:
        for variant in ("unguided", "guided"):
            row = rows[f"{arm} ({variant})"]
            assert all(key in row for key, _ in COLUMNS) and row["steps"] == 6
            assert isinstance(row["text_swap_increase"], float)
    for name in ("reader on the real test windows (ceiling)", "VAE reconstruction (ceiling)", "copy the reference frame",
                 "always the most frequent label"):
        assert all(key in rows[name] for key, _ in COLUMNS)
    # the reader on the real windows is the ceiling: it reads the truth nearly perfectly
    assert rows["reader on the real test windows (ceiling)"]["frame_accuracy"] > 0.9
    vocabulary = rows["always the most frequent label"]["vocabulary"]
    assert "idle" in vocabulary and set(vocabulary) <= {"idle", "raise_right_hand", "raise_left_hand", "wave_right_hand",
                                                       "both_hands_up", "point_forward"}
    assert report["chance"]["new_action_accuracy"] == pytest.approx(1 / len(vocabulary))
    assert set(report["learning_curves"]) == set(TRAINED) and all(report["learning_curves"][a] for a in TRAINED)
    table = (run / "report" / "report.md").read_text()
    assert "| paca (unguided) |" in table and "chance" in table
    motion = report["motion_control"]  # arm (e): sampled at three requested intensities, read back
    assert list(motion["levels"]) == ["low", "mid", "high"] and set(motion["references"]) == {"no request", "real test windows",
                                                                                     "VAE reconstruction of the real windows"}
    assert all(row["windows"] == 1 and len(row["requested"]) == 2 for row in motion["levels"].values())
    assert motion["references"]["real test windows"]["measured_body"] is not None  # the reader measures the truth
    assert "Motion-intensity control" in table
    use = motion["use"]  # its denoising error with the window's own intensity, a far-off one and none
    assert use["windows"] == 1 and all(use[k] > 0 for k in ("own", "far", "none")) and "Use check" in table
    pose = report["pose_control"]  # arm (g) ((f) is not trained): the same window with its real keypoints and without
    assert set(pose["rows"]) == {"pose-controlled (g), real keypoints given", "pose-free (g), same windows",
                                 "(a) PACA, no pose branch", "copy the reference frame"}
    assert all(row["windows"] == 1 for row in pose["rows"].values())
    assert pose["rows"]["copy the reference frame"]["keypoint_error"] is not None  # the reader reads the truth
    assert any((run / "samples" / "pose" / "inputs").glob("*.pose.npy")) and "Pose control" in table
    refocus = report["refocus"]  # arm (g): gesture against the audio's intensity, real windows and pose-free samples
    assert set(refocus["rows"]) == {"real test windows", "(g) refocusing, pose-free", "(a) PACA",
                                    "(e) motion-intensity branch, no request"}
    real = refocus["rows"]["real test windows"]
    assert real["windows"] >= 1 and -1 <= real["correlation"] <= 1 and real["loud"] >= 0 and "Gesture follows loudness" in table
    identity = report["identity"]  # arm (h): a test clip's consecutive windows as one long video, face colour per window
    assert set(identity["rows"]) == {"real frames", "VAE reconstruction of the real frames", "(h) face-focused identity attention",
                                     "(a) PACA, first-frame reference only"}
    real = identity["rows"]["real frames"]
    assert real["videos"] == 1 and len(real["windows"]) >= 2 and "Identity over long videos" in table
    assert real["error"] < 0.05 and real["identified"] == 1.0  # one test video: its frames are its own identity
    assert len(identity["rows"]["(h) face-focused identity attention"]["windows"]) == len(real["windows"])
    lips = report["lip_sync"]  # arm (j) (and every other arm): mouth openness against the real window's and the audio
    assert list(lips["rows"])[:4] == ["real frames", "real frames, another window's audio",
                                      "real frames, one mouth state per latent frame", "VAE reconstruction"]
    assert "Lip sync" in table
    assert lips["rows"]["real frames"]["mouth_r"] == pytest.approx(1.0) and lips["rows"]["real frames"]["windows"] == 2
    assert set(lips["rows"]) >= {"(a) PACA, progressive alignment", "(j) PACA + frame-wise audio–video interaction"}
    assert all(row["windows"] == 2 and -1 <= row["confidence"] <= 2 for row in lips["rows"].values())
    assert all("latent_r2" in row for name, row in lips["rows"].items() if "per latent frame" not in name)
    assert "latent R²" in table
    paired = lips["paired"]  # every other arm against (a), window by window, with a bootstrap interval
    assert set(paired) == {row for row in lips["rows"] if row.startswith("(") and not row.startswith("(a)")} and "arm − (a)" in table
    assert all(d["windows"] == 2 and d["mouth_r"]["low"] <= d["mouth_r"]["mean"] <= d["mouth_r"]["high"] for d in paired.values())
    use = lips["audio_use"]  # does each arm use its audio at all: the denoising error with another window's audio
    assert set(use) == {row for row in lips["rows"] if row.startswith("(")} and "audio swap Δ at the mouth" in table
    assert all(u["windows"] == 2 and np.isfinite(u["all"]["relative_increase"]) for u in use.values())
    vae = json.loads((run / "vae" / "vae_report.json").read_text())
    assert vae["config"]["mouth_weight"] == 8.0 and vae["reconstruction"]["mouth_psnr_db"] > 0
    for plot in ("loss_curves", "learning_curves", "timelines", "contact_sheet"):
        assert (run / "report" / "plots" / f"{plot}.png").is_file()


def test_arms_are_ordinary_checkpoints(run: Path) -> None:
    for arm in TRAINED:
        ema = run / "train" / arm / "ema"
        contract = json.loads((ema / "conditioning.json").read_text())
        assert contract["phase_routing"] == "per_frame"
        assert contract["reference"] == "ti2v" and contract["text_drop"] > 0
        assert ("pose" in contract) == (arm == "paca_refocus") and ("motion" in contract) == (arm == "paca_motion")
        assert ("audio_intensity" in contract) == (arm == "paca_refocus")
        model = json.loads((ema / "config.json").read_text())
        assert (model.get("face_identity") is not None) == (arm == "paca_face")
        assert bool(model.get("av_interaction")) == (arm == "paca_av")
        config = json.loads((run / "train" / arm / "config.yaml").read_text())
        assert config["stage"]["name"] == "stage2"


def test_every_arm_is_a_valid_train_config_differing_only_where_it_says(tmp_path: Path) -> None:
    from evaluation.mechanism.arms import VaeLatent, stage1_config, stage1_run, stage2_config, write_config

    cfg = scale_config("smoke", out=str(tmp_path))
    paths = {"models": tmp_path / "models", "vae": tmp_path / "vae", "latents": tmp_path / "latents"}
    docs = {arm: stage2_config(cfg, paths, arm) for arm in ARMS}
    for arm, doc in docs.items():
        write_config(doc, tmp_path / arm / "config.yaml")  # validated as a TrainConfig
    same = {k: v for k, v in docs["paca"].items() if k not in ("model", "data", "guidance", "flow", "output_dir")}
    for arm, doc in docs.items():
        assert {k: v for k, v in doc.items() if k not in ("model", "data", "guidance", "flow", "output_dir")} == same, arm
        assert doc["flow"] == docs["paca"]["flow"] or arm == "paca_lip", arm
    assert docs["paca_lip"]["flow"] == {**docs["paca"]["flow"], "lip_weight": 3.0} and "lip_weight" not in docs["paca"]["flow"]
    assert docs["paca_lip"]["model"] == docs["paca"]["model"]
    assert docs["paca_av"]["model"] == {**docs["paca"]["model"], "av_interaction": True}
    assert docs["base"]["data"]["phase_prob"] == 0.0 and docs["global"]["data"]["phase_routing"] == "global"
    assert docs["paca_pose"]["model"]["pose"] is True and docs["paca_pose"]["guidance"]["pose_drop"] == 0.5
    assert docs["paca_refocus"]["model"] == {**docs["paca_pose"]["model"], "refocus": True}
    assert docs["paca_refocus"]["guidance"] == docs["paca_pose"]["guidance"] and "refocus" not in docs["paca_pose"]["model"]
    assert docs["paca_face"]["model"] == {**docs["paca"]["model"], "face_identity": True}
    assert docs["paca_face"]["guidance"] == docs["paca"]["guidance"]
    assert docs["paca_constant"]["model"]["init_from"].endswith("stage1_constant/ema")
    stage1 = stage1_config(cfg, paths, "stage1", VaeLatent(4))
    constant = stage1_config(cfg, paths, stage1_run("paca_constant"), VaeLatent(4))
    assert stage1["model"]["alignment"]["schedule"] == "linear" and constant["model"]["alignment"]["schedule"] == "constant"
    assert {k: v for k, v in stage1.items() if k not in ("model", "output_dir")} == \
           {k: v for k, v in constant.items() if k not in ("model", "output_dir")}  # same budget, data and seed


def test_dit_tokens_cover_16_pixels_whatever_the_vae_stride(tmp_path: Path) -> None:
    from evaluation.mechanism.arms import VaeLatent, stage1_config, write_config
    from train.vae_train import VaeArchConfig

    VaeArchConfig(z_dim=12, base_dim=4, patch_size=1).build().save_pretrained(tmp_path / "vae")
    latent = VaeLatent.read(tmp_path / "vae")
    assert latent == VaeLatent(12, 4)
    cfg = scale_config("smoke", out=str(tmp_path))
    paths = {"models": tmp_path / "models", "vae": tmp_path / "vae", "latents": tmp_path / "latents"}
    model = stage1_config(cfg, paths, "stage1", VaeLatent(16, 8))["model"]
    assert (model["patch_size"], model["vae_stride"]) == ([1, 2, 2], [4, 8, 8])  # today's DiT on a stride-8 VAE
    doc = stage1_config(cfg, paths, "stage1", latent)
    assert (doc["model"]["patch_size"], doc["model"]["vae_stride"], doc["model"]["in_channels"]) == ([1, 4, 4], [4, 4, 4], 12)
    write_config(doc, tmp_path / "stage1.yaml")  # a valid TrainConfig
    wide = scale_config("smoke", out=str(tmp_path), overrides=["model.patch=2"])
    assert stage1_config(wide, paths, "stage1", latent)["model"]["patch_size"] == [1, 2, 2]
    odd = scale_config("smoke", out=str(tmp_path), overrides=["corpus.clip_size=48", "model.patch=8"])
    with pytest.raises(UserError, match="clip_size 48 is not a multiple of the VAE's spatial stride 4 x model.patch 8"):
        stage1_config(odd, paths, "stage1", latent)
    with pytest.raises(UserError, match="model.patch must be >= 1"):
        scale_config("smoke", out=str(tmp_path), overrides=["model.patch=0"])


def test_eval_rescores_an_arm_on_the_benchmark(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "rescore"
    assert actavatar(["eval", "--checkpoint", f"paca={run / 'train' / 'paca' / 'ema'}", "--benchmark", str(run / "benchmark"),
                      "--out", str(out), "--metrics", "actions", "--actions", "synthetic", "--no-progress",
                      "sample.sampler.steps=2", "benchmark.max_clips=2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["paca"]["num_videos"] == 2 <= len(list((run / "benchmark").glob("*.json")))


def test_rerun_resumes_without_retraining(run: Path) -> None:
    before = {p: p.stat().st_mtime for p in (run / "train").glob("*/ema/model.safetensors")}
    timings = json.loads((run / "timings.json").read_text())
    assert actavatar([*COMMAND, "--out", str(run)]) == 0
    after = {p: p.stat().st_mtime for p in (run / "train").glob("*/ema/model.safetensors")}
    assert before == after and len(before) == len(TRAINED) + 1  # every arm and their stage-1 run
    again = json.loads((run / "timings.json").read_text())
    assert again["train"] - timings["train"] < 5.0  # nothing retrained
