import numpy as np
import pytest
import torch

from train.buckets import Bucket, bucket_batches, choose_bucket, parse_buckets
from train.clip_window import WindowPlan, cut_window, face_box_in_window, plan_window, window_caption


def test_parse_and_check():
    b = Bucket.parse("17x64x32")
    assert (b.frames, b.height, b.width) == (17, 64, 32) and str(b) == "17x64x32"
    b.check(4, 16)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        Bucket.parse("16x64x64").check(4, 16)
    with pytest.raises(ValueError, match="multiples of 16"):
        Bucket.parse("17x40x64").check(4, 16)
    with pytest.raises(ValueError, match="FRAMESxHEIGHTxWIDTH"):
        parse_buckets(["17x64"])


def test_choose_bucket_prefers_aspect_then_length():
    buckets = parse_buckets(["9x32x32", "17x32x32", "17x32x64"])
    assert choose_bucket(buckets, 30, 48, 48) == Bucket(17, 32, 32)
    assert choose_bucket(buckets, 12, 48, 48) == Bucket(9, 32, 32)
    assert choose_bucket(buckets, 30, 100, 200) == Bucket(17, 32, 64)
    assert choose_bucket(buckets, 5, 48, 48) is None


def test_bucket_batches_groups_by_key():
    items = [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)]
    assert list(bucket_batches(items, 2)) == [("a", [1, 3]), ("b", [2, 4])]


def _ann():
    return {
        "video": {"fps": 25.0, "num_frames": 30, "width": 64, "height": 32},
        "face": {"bbox": [0.25, 0.0, 0.75, 1.0]},
        "caption": {"base": "base", "phases": [{"start_s": 0.0, "end_s": 0.4, "text": "a"}, {"start_s": 0.4, "end_s": 1.2, "text": "b"}]},
    }


def test_window_caption_shifts_phases():
    plan = WindowPlan(Bucket(9, 32, 32), 10, True)  # window 0.4 s .. 0.76 s
    texts, spans = window_caption(_ann(), plan, max_phases=8)
    assert texts == ("base", "b") and spans == [(0.0, pytest.approx(0.36))]
    assert window_caption(_ann(), WindowPlan(Bucket(9, 32, 32), 0, False), 8) == (("base",), [])
    assert window_caption({"caption": None, "video": {"fps": 25}}, plan, 8)[0] == ("",)


def test_plan_window_is_deterministic():
    a = plan_window(_ann(), Bucket(9, 32, 32), np.random.default_rng(3), phase_prob=0.5)
    b = plan_window(_ann(), Bucket(9, 32, 32), np.random.default_rng(3), phase_prob=0.5)
    assert a == b and 0 <= a.start_frame <= 21


def test_cut_window_and_face_box():
    frames = torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1).expand(30, 32, 64, 3).contiguous()
    audio = torch.ones(16000)  # 1.0 s: shorter than the window end (1.16 s)
    plan = WindowPlan(Bucket(9, 32, 32), 20, False)
    video, piece = cut_window(frames, audio, plan, 25.0)
    assert video.shape == (3, 9, 32, 32) and piece.shape == (5760,)
    assert video[0, 0, 0, 0].item() == pytest.approx(20 / 127.5 - 1)
    assert piece[-1].item() == 0.0  # past the clip's audio: zero padding
    box = face_box_in_window(_ann(), Bucket(9, 32, 32))  # centre crop of the middle half
    assert torch.allclose(box, torch.tensor([0.0, 0.0, 1.0, 1.0]))
