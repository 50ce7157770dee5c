"""Face-focused cross-attention for identity (model.face_identity, FantasyTalking): exactly neutral
when off, untrained or without a face box; the face tokens read only the face box of the reference
latent; once trained the face changes every latent frame's prediction; saved and loaded with the
checkpoint, and added to a checkpoint without it as a no-op."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.face_identity import FaceIdentityConfig, face_cells, has_face
from model.registry import FLAVORS, build_model
from tests.model.branches import grown_from, paired_models, saved_and_loaded
from tests.model.test_dit import FIVE, H, N_LAT, W, _inputs

BOX = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.0, 0.5, 0.5, 1.0]])


def _pair():
    """The debug DiT without and with a trained face-identity branch (attention and tokens)."""
    base, face = paired_models(None, face_identity=FaceIdentityConfig())
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in face.named_parameters():
            if name.startswith("face_tokens.") or ".face_attn." in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return base, face


def _reference(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, FLAVORS["debug"]().out_channels, H, W, generator=torch.Generator().manual_seed(seed))


def test_config_errors_and_registration_after_the_other_weights():
    with pytest.raises(ValueError, match=r"face_identity.grid must be in \[1, 16\], got 0"):
        FaceIdentityConfig(grid=0)
    with pytest.raises(ValueError, match=r"face_identity.margin must be in \[0, 1\], got 2"):
        FaceIdentityConfig(margin=2)
    torch.manual_seed(0)
    fresh = build_model(dataclasses.replace(FLAVORS["debug"](), face_identity=FaceIdentityConfig()))
    torch.manual_seed(0)
    plain = build_model(FLAVORS["debug"]())
    theirs = dict(fresh.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, theirs.pop(key)), key  # every other weight drawn the same
    assert {k.split(".face_attn.")[0] if ".face_attn." in k else k.split(".")[0] for k in theirs} == {"face_tokens", "blocks.0", "blocks.1"}
    assert fresh.zero_init_prefixes() == ("face_tokens.", "blocks.0.face_attn.", "blocks.1.face_attn.")
    assert not any(b.face_attn.to_out.weight.any() for b in fresh.blocks) and not fresh.face_tokens.pos.any()


def test_neutral_when_untrained_or_without_a_face():
    base, face = _pair()
    x, t, text, kw = _inputs(base, [FIVE, FIVE[:2]])
    ref = _reference(2)
    with torch.no_grad():
        today = base(x, t, text, **kw)
        torch.testing.assert_close(face(x, t, text, **kw), today, atol=1e-6, rtol=0)  # no face given
        nan = torch.full((2, 4), float("nan"))  # clips without a face box
        torch.testing.assert_close(face(x, t, text, face_reference=ref, face_box=nan, **kw), today, atol=1e-6, rtol=0)
        for block in face.blocks:  # as initialised: zero output projections
            block.face_attn.reset_parameters()
        torch.testing.assert_close(face(x, t, text, face_reference=ref, face_box=BOX, **kw), today, atol=1e-6, rtol=0)


def test_trained_face_changes_every_latent_frame_and_only_samples_with_a_face():
    base, face = _pair()
    x, t, text, kw = _inputs(base, [FIVE, FIVE])
    ref = _reference(2)
    box = BOX.clone()
    box[1] = float("nan")  # sample 1 has no face box
    with torch.no_grad():
        plain = base(x, t, text, **kw)
        out = face(x, t, text, face_reference=ref, face_box=box, **kw)
        other = face(x, t, text, face_reference=_reference(2, seed=1), face_box=box, **kw)
    moved = (out[0] - plain[0]).abs().amax(dim=(0, 2, 3))  # (N_LAT,)
    assert moved.shape == (N_LAT,) and (moved > 1e-4).all()  # every latent frame reads the face
    assert (other[0] - out[0]).abs().max() > 1e-4  # another face, another prediction
    torch.testing.assert_close(out[1], plain[1], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="face reference given but model.face_identity is None"):
        base(x, t, text, face_reference=ref, face_box=box, **kw)
    with pytest.raises(ValueError, match="face_reference needs face_box"):
        face(x, t, text, face_reference=ref, **kw)


def test_face_cells_read_only_the_face_box():
    cfg = FaceIdentityConfig(grid=4, margin=0.0)
    ref = torch.randn(2, 3, 16, 16)
    cells = face_cells(ref, BOX, cfg)
    assert cells.shape == (2, 16, 3)
    # a 4x4 grid over latent cells [4, 12) samples the middle of each 2x2 block: their mean
    expected = ref[0, :, 4:12, 4:12].unflatten(1, (4, 2)).unflatten(3, (4, 2)).mean(dim=(2, 4)).flatten(1).T
    torch.testing.assert_close(cells[0], expected)
    changed = ref.clone()
    changed[0, :, :4] += 5.0  # outside sample 0's box (rows above it)
    changed[1, :, 8:, :8] += 5.0  # inside sample 1's box (bottom-left quarter)
    after = face_cells(changed, BOX, cfg)
    torch.testing.assert_close(after[0], cells[0])
    assert (after[1] - cells[1]).abs().min() > 4.0
    assert has_face(torch.tensor([[0.1, 0.1, 0.1, 0.5], [0.0, 0.0, 1.0, 1.0]])).tolist() == [False, True]
    # the margin grows the box (clamped to the frame): the whole frame at margin 0.5 of a centred half box
    wide = face_cells(ref[:1], BOX[:1], FaceIdentityConfig(grid=8, margin=0.5))
    torch.testing.assert_close(wide[0], ref[0].unflatten(1, (8, 2)).unflatten(3, (8, 2)).mean(dim=(2, 4)).flatten(1).T)


def test_checkpoint_round_trip_and_adding_the_branch_to_a_checkpoint(tmp_path):
    from dataset.errors import UserError
    from train.model_init import ModelConfig, build_dit

    base, face = _pair()
    loaded = saved_and_loaded(face, tmp_path / "with")
    assert loaded.config.face_identity == FaceIdentityConfig()
    x, t, text, kw = _inputs(face, [FIVE])
    ref = _reference(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, text, face_reference=ref, face_box=BOX[:1], **kw),
                                   face(x, t, text, face_reference=ref, face_box=BOX[:1], **kw))
    grown = grown_from(base, tmp_path / "plain", face_identity=True)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, face_reference=ref, face_box=BOX[:1], **kw), base(x, t, text, **kw),
                                   atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="model.face_identity=false removes the trained face-focused identity weights"):
        build_dit(ModelConfig(init_from=str(tmp_path / "with"), face_identity=False), seed=0)
