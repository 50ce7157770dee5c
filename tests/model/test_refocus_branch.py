"""Audio–pose prior refocusing (model.refocus, ApoAvatar): exactly neutral when off, untrained or
without an intensity; once trained it scales a posed sample's pose tokens per latent frame and gives a
pose-free sample a prior from the audio alone; each latent frame reads only its own frames' intensity;
dropped with the audio; saved and loaded with the checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.pose import PoseConfig, without_pose
from model.refocus import AudioPoseRefocus, RefocusConfig, has_intensity, intensity_batch
from model.registry import FLAVORS, build_model
from tests.model.branches import grown_from, paired_models, saved_and_loaded
from tests.model.test_dit import FIVE, N_LAT, _inputs
from tests.model.test_pose_branch import FRAMES, _pose


def _intensity(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, FRAMES, generator=torch.Generator().manual_seed(seed))


def _pair():
    """The debug DiT with a trained pose branch, without and with a trained refocusing branch."""
    return paired_models("refocus", shared={"pose": PoseConfig()}, refocus=RefocusConfig())


def test_needs_the_pose_branch_and_is_registered_after_the_others():
    with pytest.raises(ValueError, match="model.refocus scales the pose branch: it needs model.pose"):
        dataclasses.replace(FLAVORS["debug"](), refocus=RefocusConfig())
    torch.manual_seed(0)
    fresh = build_model(dataclasses.replace(FLAVORS["debug"](), pose=PoseConfig(), refocus=RefocusConfig()))
    torch.manual_seed(0)
    posed = build_model(dataclasses.replace(FLAVORS["debug"](), pose=PoseConfig()))
    theirs = dict(fresh.state_dict())
    for key, value in posed.state_dict().items():
        assert torch.equal(value, theirs.pop(key)), key
    assert sorted(theirs) == ["refocus.encode.bias", "refocus.encode.weight", "refocus.gain.bias", "refocus.gain.weight",
                              "refocus.prior.bias", "refocus.prior.weight"]
    assert fresh.zero_init_prefixes()[-1] == "refocus."
    assert not fresh.refocus.gain.weight.any() and not fresh.refocus.prior.weight.any()


def test_neutral_when_untrained_or_without_intensity():
    pose_only, both = _pair()
    x, t, text, kw = _inputs(pose_only, [FIVE, FIVE[:2]])
    pose, level = _pose(2), _intensity(2)
    with torch.no_grad():
        today = pose_only(x, t, text, pose=pose, **kw)
        torch.testing.assert_close(both(x, t, text, pose=pose, **kw), today, atol=1e-6, rtol=0)
        nan = torch.full_like(level, float("nan"))  # no intensity stored / audio dropped
        torch.testing.assert_close(both(x, t, text, pose=pose, audio_intensity=nan, **kw), today, atol=1e-6, rtol=0)
        both.refocus.reset_parameters()  # as initialised: zero gain and prior
        torch.testing.assert_close(both(x, t, text, pose=pose, audio_intensity=level, **kw), today, atol=1e-6, rtol=0)


def test_trained_branch_refocuses_posed_samples_and_gives_pose_free_ones_a_prior():
    pose_only, both = _pair()
    x, t, text, kw = _inputs(both, [FIVE, FIVE])
    pose = without_pose(_pose(2), torch.tensor([False, True]))  # sample 0 posed, sample 1 pose-free
    level = _intensity(2)
    with torch.no_grad():
        plain = pose_only(x, t, text, pose=pose, **kw)
        out = both(x, t, text, pose=pose, audio_intensity=level, **kw)
        louder = both(x, t, text, pose=pose, audio_intensity=(level + 0.5).clamp(max=1.0), **kw)
        no_pose_at_all = both(x, t, text, audio_intensity=level, **kw)
    for i in (0, 1):
        assert (out[i] - plain[i]).abs().max() > 1e-3  # the intensity changes both samples' predictions
        assert (louder[i] - out[i]).abs().max() > 1e-3  # and another intensity changes them differently
    torch.testing.assert_close(no_pose_at_all[1], out[1], atol=1e-6, rtol=0)  # pose-free = no pose given
    assert (no_pose_at_all[0] - out[0]).abs().max() > 1e-3


def test_each_latent_frame_reads_its_own_frames_and_tokens():
    torch.manual_seed(0)
    branch = AudioPoseRefocus(RefocusConfig(hidden=8), dim=4, temporal_stride=4)
    torch.nn.init.normal_(branch.gain.weight)
    torch.nn.init.normal_(branch.prior.weight)
    n_t, tokens = 3, (3, 2, 2)  # 9 video frames, 4 tokens per latent frame
    level = torch.rand(2, 9)
    pose_tokens = torch.randn(2, 12, 4)
    pose_tokens[1] = 0.0  # sample 1 is pose-free
    posed = torch.tensor([True, False])
    out = branch(level, pose_tokens, posed, n_t, tokens)
    changed = level.clone()
    changed[:, 5:9] += 0.3  # latent frame 2's frames only
    moved = (branch(changed, pose_tokens, posed, n_t, tokens) - out).abs().view(2, 3, 4, 4).amax(dim=(2, 3))
    assert (moved[:, :2] == 0).all() and (moved[:, 2] > 0).all()
    # the posed sample: pose tokens x gain (zero where its tokens are zero); the pose-free one: the prior alone
    pose_tokens[0, :4] = 0.0
    out = branch(level, pose_tokens, posed, n_t, tokens)
    assert out[0, :4].abs().max() == 0 and out[0, 4:].abs().max() > 0
    assert torch.allclose(out[1, 0], out[1, 3])  # the prior is the same for every token of a latent frame
    with pytest.raises(ValueError, match=r"audio intensity must be \(B, >= 9\) for 3 latent frames"):
        branch(level[:, :8], pose_tokens, posed, n_t, tokens)


def test_intensity_batch_and_dropping_it_with_the_audio():
    from train.conditioning import ModelInputs

    batch = intensity_batch([None, [0.5] * FRAMES], FRAMES)
    assert batch.shape == (2, FRAMES) and has_intensity(batch).tolist() == [False, True]
    pose_only, _ = _pair()
    x, t, text, kw = _inputs(pose_only, [FIVE])
    with pytest.raises(ValueError, match="audio intensity given but model.refocus is None"):
        pose_only(x, t, text, audio_intensity=_intensity(1), **kw)
    inputs = ModelInputs(latents=torch.zeros(2, 4, N_LAT, 4, 4), tokens=torch.zeros(2, 3, 8), block_ids=torch.zeros(2, 3, dtype=torch.long),
                         frame_phases=torch.zeros(2, N_LAT, 1, dtype=torch.long), audio=torch.ones(2, 5, 8),
                         audio_index=torch.zeros(2, N_LAT, 2, dtype=torch.long), audio_mask=torch.ones(2, N_LAT, 2, dtype=torch.bool),
                         face_box=torch.zeros(2, 4), negative=torch.zeros(1, 8), audio_intensity=_intensity(2))
    dropped = inputs.with_dropped(torch.tensor([False, False]), torch.tensor([True, False]))
    assert has_intensity(dropped.audio_intensity).tolist() == [False, True]
    assert "audio_intensity" in dropped.dit_kwargs()


def test_checkpoint_round_trip_and_adding_the_branch_to_a_pose_checkpoint(tmp_path):
    from dataset.errors import UserError
    from train.model_init import ModelConfig, build_dit

    pose_only, both = _pair()
    loaded = saved_and_loaded(both, tmp_path / "with")
    assert loaded.config.refocus == RefocusConfig()
    x, t, text, kw = _inputs(both, [FIVE])
    pose, level = _pose(1), _intensity(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, text, pose=pose, audio_intensity=level, **kw),
                                   both(x, t, text, pose=pose, audio_intensity=level, **kw))
    grown = grown_from(pose_only, tmp_path / "pose_only", refocus=True)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, pose=pose, audio_intensity=level, **kw),
                                   pose_only(x, t, text, pose=pose, **kw), atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="model.refocus=false removes the trained audio–pose refocusing weights"):
        build_dit(ModelConfig(init_from=str(tmp_path / "with"), refocus=False), seed=0)
