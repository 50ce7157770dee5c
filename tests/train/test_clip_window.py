"""Training windows and the sampler's reference image go through the same resize/crop."""

import numpy as np
import pytest
import torch

from evaluation.sample import image_tensor
from train.buckets import Bucket
from train.clip_window import WindowPlan, cut_window, face_box_in_window


@pytest.mark.parametrize("shape", [(40, 52), (32, 32), (90, 30)])
def test_training_window_first_frame_is_the_samplers_reference_image(shape):
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (14, *shape, 3), dtype=np.uint8))
    plan = WindowPlan(Bucket.parse("9x32x32"), 4, False)
    video, audio = cut_window(frames, torch.zeros(16000), plan, 25.0)
    assert video.shape == (3, 9, 32, 32) and audio.shape == (5760,)
    reference = image_tensor(frames[4].numpy(), 32, 32)  # the sampler's path for a reference image
    assert reference.shape == (1, 3, 32, 32) and torch.equal(video[:, 0], reference[0])


def test_face_box_follows_the_same_crop():
    # a 40 x 80 frame into 32 x 32: scale 0.8, crop columns 16..47 of the 64 px wide resize
    ann = {"video": {"height": 40, "width": 80}, "face": {"bbox": [0.25, 0.0, 0.75, 1.0]}}
    box = face_box_in_window(ann, Bucket.parse("9x32x32"))
    torch.testing.assert_close(box, torch.tensor([0.0, 0.0, 1.0, 1.0]))
