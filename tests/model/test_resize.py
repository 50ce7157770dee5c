"""`cover_crop`: the one frame/image preprocessing (scale to cover, centre crop, [-1, 1])."""

import pytest
import torch

from model.resize import cover_crop, cover_crop_box


def test_cover_then_centre_crop():
    # 40 x 80 into 32 x 32: scale 0.8 covers the height -> 32 x 64, crop columns 16..47
    assert cover_crop_box(40, 80, 32, 32) == (0.8, (32, 64), 0, 16)
    frames = torch.zeros(2, 40, 80, 3, dtype=torch.uint8)
    frames[:, :, 40:] = 255  # right half white
    out = cover_crop(frames, 32, 32)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    # the crop keeps the centre: black left edge, white right edge
    torch.testing.assert_close(out[:, :, :, 0], torch.full((2, 3, 32), -1.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, :, :, -1], torch.full((2, 3, 32), 1.0), atol=1e-4, rtol=0)
    assert out.min() >= -1 and out.max() <= 1


def test_same_size_is_only_converted_and_an_image_is_one_frame():
    image = torch.randint(0, 256, (16, 24, 3), dtype=torch.uint8)
    out = cover_crop(image, 16, 24)
    assert out.shape == (1, 3, 16, 24)
    assert torch.equal(out[0], image.permute(2, 0, 1).float() / 127.5 - 1.0)
    video = torch.stack([image, image])
    assert torch.equal(cover_crop(video, 8, 8)[1], cover_crop(image, 8, 8)[0])  # per-frame, batch-independent
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        cover_crop(torch.zeros(3, 16, 16, dtype=torch.uint8), 8, 8)


def test_box_in_cover_crop_follows_the_crop():
    from model.resize import box_in_cover_crop

    # 40 x 80 into 32 x 32: columns 16..47 of the 32 x 64 resize survive
    assert box_in_cover_crop((0.25, 0.0, 0.75, 1.0), 40, 80, 32, 32) == (0.0, 0.0, 1.0, 1.0)
    assert box_in_cover_crop((0.5, 0.25, 0.625, 0.5), 40, 80, 32, 32) == (0.5, 0.25, 0.75, 0.5)
    assert box_in_cover_crop((0.0, 0.1, 0.2, 0.3), 40, 80, 32, 32) == (0.0, 0.1, 0.0, 0.3)  # cropped away: clamped
    assert box_in_cover_crop((0.1, 0.2, 0.3, 0.4), 64, 64, 64, 64) == pytest.approx((0.1, 0.2, 0.3, 0.4))
