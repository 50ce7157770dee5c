import pytest
import torch

from model.reference import i2v_condition, i2v_input, i2v_mask, ti2v_inject


def test_i2v_mask_marks_video_frame_zero():
    m = i2v_mask(9, 2, 3)  # 9 video frames -> 3 latent frames, 4 mask channels
    assert m.shape == (1, 4, 3, 2, 3)
    assert m[:, :, 0].eq(1).all() and m[:, :, 1:].eq(0).all()
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        i2v_mask(8, 2, 3)


def test_i2v_channel_layout_gives_36_for_wan_14b():
    cond = i2v_condition(torch.randn(2, 16, 21, 4, 4), 81)
    x = i2v_input(torch.randn(2, 16, 21, 4, 4), cond)
    assert cond.shape[1] == 20 and x.shape[1] == 36


def test_ti2v_inject_replaces_first_latent_frame():
    noisy, image = torch.randn(1, 48, 5, 2, 2), torch.randn(1, 48, 1, 2, 2)
    out = ti2v_inject(noisy, image)
    assert torch.equal(out[:, :, :1], image) and torch.equal(out[:, :, 1:], noisy[:, :, 1:])
