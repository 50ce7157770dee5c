"""The pose branch (model.pose, ApoAvatar / TALK-Act): exactly neutral when off, untrained or given no
pose; a real condition once trained; its keypoint maps land where the keypoints are; a shift of the
keypoints by one patch shifts its tokens by one; saved and loaded with the checkpoint."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from model.pose import PoseConfig, PoseEmbedding, has_pose, latent_frame_index, pose_batch, render_pose_maps, without_pose
from model.registry import FLAVORS, build_model
from tests.model.branches import grown_from, paired_models, saved_and_loaded
from tests.model.test_dit import FIVE, N_LAT, _inputs

FRAMES = 1 + 4 * (N_LAT - 1)  # video frames of the test latents (temporal stride 4)


def _pose(batch: int, frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    """Random keypoints inside the frame, all measured."""
    gen = torch.Generator().manual_seed(seed)
    pose = torch.rand(batch, frames, 15, 3, generator=gen)
    pose[..., 2] = 1.0
    return pose


def _pair():
    """The debug DiT without and with the pose branch (a "trained" one), from the same seed."""
    return paired_models("pose_embed", pose=PoseConfig())


def test_registered_last_so_every_other_weight_is_the_same():
    torch.manual_seed(0)
    fresh = build_model(dataclasses.replace(FLAVORS["debug"](), pose=PoseConfig()))
    torch.manual_seed(0)
    plain = build_model(FLAVORS["debug"]())
    theirs = dict(fresh.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, theirs.pop(key)), key
    assert not fresh.pose_embed.proj.weight.any() and not fresh.pose_embed.proj.bias.any()  # zero output
    assert sorted(theirs) == ["pose_embed.conv.bias", "pose_embed.conv.weight", "pose_embed.proj.bias", "pose_embed.proj.weight"]
    assert fresh.pose_embed.conv.in_channels == 15 * 4  # keypoints x the frames one latent frame encodes


def test_neutral_when_off_when_untrained_and_without_pose():
    base, with_pose = _pair()
    x, t, text, kw = _inputs(base, [FIVE, FIVE[:2]])
    pose = _pose(2)
    with torch.no_grad():
        today = base(x, t, text, **kw)
        # trained branch, but no keypoint measured anywhere (pose-free / dropped): exactly today's output
        torch.testing.assert_close(with_pose(x, t, text, pose=without_pose(pose, torch.tensor([True, True])), **kw),
                                   today, atol=1e-6, rtol=0)
        torch.testing.assert_close(with_pose(x, t, text, **kw), today, atol=1e-6, rtol=0)
        with_pose.pose_embed.reset_parameters()  # as initialised: zero output
        torch.testing.assert_close(with_pose(x, t, text, pose=pose, **kw), today, atol=1e-6, rtol=0)


def test_trained_branch_conditions_per_sample():
    base, model = _pair()
    x, t, text, kw = _inputs(model, [FIVE, FIVE])
    pose = _pose(2)
    half = without_pose(pose, torch.tensor([False, True]))  # sample 1 pose-free
    with torch.no_grad():
        plain = base(x, t, text, **kw)
        posed = model(x, t, text, pose=half, **kw)
        other = model(x, t, text, pose=without_pose(_pose(2, seed=5), torch.tensor([False, True])), **kw)
    assert (posed[0] - plain[0]).abs().max() > 1e-3  # the keypoints change the prediction
    assert (posed[0] - other[0]).abs().max() > 1e-3  # and different keypoints change it differently
    torch.testing.assert_close(posed[1], plain[1], atol=1e-6, rtol=0)  # the pose-free sample is untouched


def test_a_v1_branch_reads_the_layout_prefix_and_a_v2_branch_reads_the_hands():
    """Layout v2 appends the hands: a 15-keypoint branch (old checkpoints, the default) gives the
    same tokens for a v2 array as for its first 15 keypoints; a 57-keypoint branch sees the hands."""
    grid = (N_LAT, 6, 6)
    v1 = PoseEmbedding(PoseConfig(), dim=16, patch_size=(1, 2, 2), temporal_stride=4)
    v2 = PoseEmbedding(PoseConfig(num_keypoints=57), dim=16, patch_size=(1, 2, 2), temporal_stride=4)
    for emb in (v1, v2):
        torch.nn.init.normal_(emb.proj.weight, std=0.5)  # "trained"
    gen = torch.Generator().manual_seed(3)
    full = torch.rand(1, FRAMES, 57, 3, generator=gen)
    full[..., 2] = 1.0
    hands_moved = full.clone()
    hands_moved[:, :, 15:, :2] = torch.rand(1, FRAMES, 42, 2, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(v1(full, grid), v1(full[:, :, :15], grid), atol=0, rtol=0)
        torch.testing.assert_close(v1(hands_moved, grid), v1(full, grid), atol=0, rtol=0)
        assert (v2(hands_moved, grid) - v2(full, grid)).abs().max() > 1e-3
        only_hands = full.clone()
        only_hands[:, :, :15, 2] = 0.0  # a v1 branch given only hands is pose-free: exactly nothing
        assert v1(only_hands, grid).abs().max() == 0
    with pytest.raises(ValueError, match="pose has 15 keypoints per frame, model.pose.num_keypoints is 57"):
        v2(full[:, :, :15], grid)


def test_maps_put_each_keypoint_on_its_cell_frame_and_slot():
    stride, grid = 4, (3, 4, 6)  # 3 latent frames = 9 video frames
    pose = torch.full((1, 9, 2, 3), math.nan)
    pose[..., 2] = 0.0
    pose[0, 5, 1] = torch.tensor([(2 + 0.5) / 6, (1 + 0.5) / 4, 0.8])  # keypoint 1 in video frame 5 at cell (y 1, x 2)
    pose[0, 0, 0] = torch.tensor([0.5 / 6, 3.5 / 4, 1.0])  # keypoint 0 in frame 0 at cell (3, 0)
    maps = render_pose_maps(pose, grid, stride, sigma=0.5)
    assert maps.shape == (1, 2 * stride, 3, 4, 6)
    # frame 5 is the 1st of latent frame 2's four frames (5 = (2 - 1) * 4 + 1 + 0): channel slot 0 * K + 1
    assert maps[0, 1, 2, 1, 2] == pytest.approx(0.8) and maps[0, 1, 2].argmax() == 1 * 6 + 2
    assert maps[0, 1, 2, 1, 3] == pytest.approx(0.8 * math.exp(-1 / (2 * 0.25)))  # one cell away: the Gaussian
    assert maps[0, :, 1].abs().max() == 0  # latent frame 1 (frames 1-4) has no keypoint
    for slot in range(stride):  # latent frame 0 is video frame 0 in every slot (Wan's causal first frame)
        assert maps[0, slot * 2 + 0, 0, 3, 0] == pytest.approx(1.0)
    assert latent_frame_index(3, 4).tolist() == [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]]
    assert has_pose(pose).tolist() == [True] and has_pose(without_pose(pose, torch.tensor([True]))).tolist() == [False]


def test_a_shift_by_one_patch_shifts_the_tokens_by_one():
    torch.manual_seed(0)
    emb = PoseEmbedding(PoseConfig(num_keypoints=3, sigma=0.5), dim=16, patch_size=(1, 2, 2), temporal_stride=4)
    torch.nn.init.normal_(emb.proj.weight)
    grid = (2, 12, 12)  # 5 frames; 6 x 6 tokens
    pose = torch.full((1, 5, 3, 3), 0.3)
    pose[..., 0] = torch.tensor([0.35, 0.4, 0.45])  # x, well inside the frame
    pose[..., 2] = 1.0
    shifted = pose.clone()
    shifted[..., 0] += 2 / 12  # one patch (2 latent cells) to the right
    a = emb(pose, grid).view(1, 2, 6, 6, 16)
    b = emb(shifted, grid).view(1, 2, 6, 6, 16)
    torch.testing.assert_close(b[:, :, :, 1:], a[:, :, :, :-1], atol=1e-5, rtol=0)


def test_pose_batch_and_errors_name_the_problem():
    batch = pose_batch([None, _pose(1)[0].numpy()], FRAMES, 15)
    assert batch.shape == (2, FRAMES, 15, 3) and has_pose(batch).tolist() == [False, True]
    base, with_pose = _pair()
    x, t, text, kw = _inputs(base, [FIVE])
    with pytest.raises(ValueError, match="model.pose is None"):
        base(x, t, text, pose=_pose(1), **kw)
    with pytest.raises(ValueError, match=rf"pose has {FRAMES - 1} frames; {N_LAT} latent frames \(temporal stride 4\) need {FRAMES}"):
        with_pose(x, t, text, pose=_pose(1, frames=FRAMES - 1), **kw)
    with pytest.raises(ValueError, match="pose has 14 keypoints per frame"):
        with_pose(x, t, text, pose=_pose(1)[:, :, :14], **kw)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        PoseConfig(sigma=0)


def test_checkpoint_round_trip_and_adding_the_branch_to_an_old_checkpoint(tmp_path):
    from dataset.errors import UserError
    from train.model_init import ModelConfig, build_dit

    base, with_pose = _pair()
    loaded = saved_and_loaded(with_pose, tmp_path / "with")
    assert loaded.config.pose == PoseConfig()
    x, t, text, kw = _inputs(base, [FIVE])
    pose = _pose(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, text, pose=pose, **kw), with_pose(x, t, text, pose=pose, **kw))
    grown = grown_from(base, tmp_path / "without", pose=True, motion=True)  # e.g. a stage-1 export: stage 2 adds the branch
    assert grown.config.pose is not None and grown.config.motion is not None
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, pose=pose, **kw), base(x, t, text, **kw), atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="model.pose=false removes the trained pose-branch weights"):
        build_dit(ModelConfig(init_from=str(tmp_path / "with"), pose=False), seed=0)


def test_pose_keypoints_from_the_config(tmp_path):
    """`model.pose_keypoints` sizes a new branch (57: with the hands); a trained branch keeps its own."""
    from dataset.errors import UserError
    from train.model_init import ModelConfig, apply_overrides, build_dit

    hands = apply_overrides(FLAVORS["debug"](), ModelConfig(pose=True, pose_keypoints=57))
    assert hands.pose == PoseConfig(num_keypoints=57)
    assert apply_overrides(FLAVORS["debug"](), ModelConfig(pose=True)).pose == PoseConfig(num_keypoints=15)
    with pytest.raises(UserError, match=r"model.pose_keypoints needs the pose branch \(model.pose: true\)"):
        ModelConfig(pose_keypoints=57)
    with pytest.raises(UserError, match=r"model.pose_keypoints must be in \[1, 57\]"):
        ModelConfig(pose=True, pose_keypoints=58)
    grown = grown_from(build_model(hands).eval(), tmp_path / "hands")  # saved and loaded: the count is kept
    assert grown.config.pose.num_keypoints == 57 and grown.pose_embed.conv.in_channels == 57 * 4
    with pytest.raises(UserError, match="model.pose_keypoints=15 changes the weight shapes of the trained pose branch"):
        build_dit(ModelConfig(init_from=str(tmp_path / "hands"), pose_keypoints=15), seed=0)
