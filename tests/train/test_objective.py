import math

import pytest
import torch

from train.objective import (
    FlowConfig,
    add_noise,
    flow_loss,
    lip_region,
    lip_tracing_weight,
    motion_weight,
    mouth_boxes,
    region_weight,
    sample_sigmas,
    shift_sigma,
    timesteps_from_sigmas,
    velocity_target,
)


def test_shift_sigma_exact_values():
    u = torch.tensor([0.0, 0.5, 1.0, 0.25])
    assert torch.allclose(shift_sigma(u, 1.0), u)
    # shift 5: 5u / (1 + 4u) -> 0.5 -> 2.5/3, 0.25 -> 1.25/2
    assert torch.allclose(shift_sigma(u, 5.0), torch.tensor([0.0, 2.5 / 3.0, 1.0, 0.625]))


def test_sample_sigmas_deterministic_and_shifted():
    cfg = FlowConfig(shift=3.0)
    a = sample_sigmas(1000, cfg, torch.Generator().manual_seed(1))
    b = sample_sigmas(1000, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert a.mean() > 0.6  # shift > 1 moves mass to high noise
    ln = sample_sigmas(8, FlowConfig(shift=1.0, sampling="logit_normal"), torch.Generator().manual_seed(0))
    assert ((ln > 0) & (ln < 1)).all()


def test_noising_and_velocity():
    x0, noise = torch.full((2, 1, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1, 1), -1.0)
    sigma = torch.tensor([0.0, 0.25])
    x_t = add_noise(x0, noise, sigma)
    assert x_t.flatten().tolist() == [2.0, 1.25]  # 0.75 * 2 + 0.25 * -1
    assert velocity_target(x0, noise).flatten().tolist() == [-3.0, -3.0]
    # one Euler step along the true velocity from sigma=0.25 to 0 recovers x0
    assert torch.allclose(x_t[1] - 0.25 * velocity_target(x0, noise)[1], x0[1])
    assert timesteps_from_sigmas(torch.tensor([0.5])).item() == 500.0


def test_lip_region_and_weight_map():
    face = torch.tensor([[0.0, 0.0, 1.0, 1.0], [math.nan] * 4])
    lips = lip_region(face, (0.25, 0.5, 0.75, 1.0))
    assert torch.allclose(lips[0], torch.tensor([0.25, 0.5, 0.75, 1.0]))
    w = region_weight(lips, (4, 4), 3.0)
    assert w.shape == (2, 1, 1, 4, 4)
    expected = torch.ones(4, 4)
    expected[2:, 1:3] = 3.0
    assert torch.equal(w[0, 0, 0], expected)
    assert torch.equal(w[1, 0, 0], torch.ones(4, 4))  # no face data: no extra weight


def _keypoints(frames: int, mouth: list[tuple[float, float] | None], ears: float | None = None) -> torch.Tensor:
    """(1, F, 15, 3): a mouth per frame (None = not measured), optional ears `ears` apart."""
    kp = torch.full((1, frames, 15, 3), math.nan)
    kp[..., 2] = 0.0
    for f, m in enumerate(mouth):
        if m is not None:
            kp[0, f, 3] = torch.tensor([m[0], m[1], 1.0])
            if ears is not None:
                kp[0, f, 4] = torch.tensor([m[0] - ears / 2, m[1] - 0.3, 1.0])
                kp[0, f, 5] = torch.tensor([m[0] + ears / 2, m[1] - 0.3, 1.0])
    return kp


def test_mouth_boxes_follow_the_mouth_and_size_with_the_face():
    face = torch.tensor([[0.2, 0.1, 0.6, 0.5]])  # 0.4 x 0.4
    kp = _keypoints(3, [(0.4, 0.4), None, (0.5, 0.45)])
    boxes = mouth_boxes(kp, face, (0.25, 0.5, 0.75, 1.0))  # half of the face's width, half its height
    assert torch.allclose(boxes[0, 0], torch.tensor([0.3, 0.3, 0.5, 0.5]))
    assert torch.isnan(boxes[0, 1]).all()  # no mouth in that frame
    assert torch.allclose(boxes[0, 2], torch.tensor([0.4, 0.35, 0.6, 0.55]))
    kp[0, 0, 6] = torch.tensor([0.4, 0.3, 1.0])  # both lips measured: their midpoint wins
    kp[0, 0, 7] = torch.tensor([0.4, 0.34, 1.0])
    assert torch.allclose(mouth_boxes(kp, face, (0.25, 0.5, 0.75, 1.0))[0, 0, 1], torch.tensor(0.22))
    no_face = mouth_boxes(_keypoints(1, [(0.5, 0.5)], ears=0.4), torch.full((1, 4), math.nan), (0.25, 0.5, 0.75, 1.0))
    assert torch.allclose(no_face[0, 0], torch.tensor([0.4, 0.4, 0.6, 0.6]))  # the ears give the face's size


def test_lip_tracing_weight_follows_the_mouth_per_latent_frame():
    # 9 video frames -> 3 latent frames (stride 4) on a 4x4 grid; the mouth moves from the top-left
    # cell (frames 0-4) to the bottom-right cell (frames 5-8)
    face = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    kp = _keypoints(9, [(0.125, 0.125)] * 5 + [(0.875, 0.875)] * 4)
    w = lip_tracing_weight(kp, face, (0.4, 0.4, 0.6, 0.6), (3, 4, 4), 4, 3.0)  # boxes 0.1 wide: one cell
    assert w.shape == (1, 1, 3, 4, 4)
    for t, cell in ((0, (0, 0)), (1, (0, 0)), (2, (3, 3))):
        expected = torch.ones(4, 4)
        expected[cell] = 3.0
        assert torch.equal(w[0, 0, t], expected), t
    # latent frame 1 covers frames 1-4; move frame 4's mouth: the frame's cells are the union
    kp2 = _keypoints(9, [(0.125, 0.125)] * 4 + [(0.375, 0.125)] + [(0.875, 0.875)] * 4)
    assert w.new_tensor([3.0, 3.0]).equal(lip_tracing_weight(kp2, face, (0.4, 0.4, 0.6, 0.6), (3, 4, 4), 4, 3.0)[0, 0, 1, 0, :2])
    # no mouth anywhere: exactly the static box of the face (what training without keypoints uses)
    none = _keypoints(9, [None] * 9)
    static = region_weight(lip_region(face, (0.25, 0.5, 0.75, 1.0)), (4, 4), 3.0)
    assert torch.equal(lip_tracing_weight(none, face, (0.25, 0.5, 0.75, 1.0), (3, 4, 4), 4, 3.0), static.expand(1, 1, 3, 4, 4))


def test_flow_loss_weighting_and_frame_mask():
    pred = torch.zeros(1, 1, 2, 1, 2)
    target = torch.tensor([[[[[1.0, 3.0]], [[2.0, 2.0]]]]])  # squared errors 1, 9 | 4, 4
    assert flow_loss(pred, target).item() == pytest.approx(4.5)
    w = torch.tensor([1.0, 3.0]).view(1, 1, 1, 1, 2)
    assert flow_loss(pred, target, w).item() == pytest.approx((1 + 27 + 4 + 12) / 8)
    mask = torch.tensor([[False, True]])
    assert flow_loss(pred, target, frame_mask=mask).item() == pytest.approx(4.0)


@pytest.mark.parametrize("kwargs", [{"shift": 0.0}, {"sampling": "beta"}, {"lip_weight": 0.5}, {"lip_box": (0.5, 0.0, 0.4, 1.0)}])
def test_flow_config_rejects(kwargs):
    with pytest.raises(ValueError, match="flow."):
        FlowConfig(**kwargs)


def test_motion_weight_marks_cells_that_move():
    x0 = torch.zeros(2, 4, 3, 2, 2)
    x0[0, :, 2, 1, 1] = 2.0  # sample 0: one cell moves in frame 2
    w = motion_weight(x0, 4.0)
    assert w.shape == (2, 1, 3, 2, 2)
    assert w[0, 0, 2, 1, 1] == 5.0  # the moving cell: 1 + weight
    assert torch.all(w[0].flatten()[:-1] == 1.0)  # every other cell (and frame 0) keeps 1
    assert torch.all(w[1] == 1.0)  # a still clip is weighted uniformly
    with pytest.raises(ValueError, match="motion_weight"):
        FlowConfig(motion_weight=-1.0)
