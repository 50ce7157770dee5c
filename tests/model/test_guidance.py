"""`unconditional_inputs`: the guidance branches' inputs, shared by training dropout and sampling."""

import pytest
import torch

from model.guidance import unconditional_inputs
from model.phase_layout import collate_text_blocks, frame_phase_map


def _text():
    # sample 0: base (3 tokens) + 2 phases; sample 1: base only (2 tokens); budget 10, width 4
    blocks = [[torch.full((3, 4), 1.0), torch.full((2, 4), 2.0), torch.full((1, 4), 3.0)], [torch.full((2, 4), 5.0)]]
    maps = [frame_phase_map([(0.0, 0.2), (0.2, 0.36)], 3, 25.0), frame_phase_map([], 3, 25.0)]
    return collate_text_blocks(blocks, maps, total=10)


def test_dropped_rows_get_the_negative_base_block_and_zero_audio():
    text, audio, negative = _text(), torch.randn(2, 7, 6), torch.full((4, 4), -1.0)
    out, out_audio = unconditional_inputs(text, audio, negative, drop_text=torch.tensor([True, False]),
                                          drop_audio=torch.tensor([False, True]))
    # sample 0: text replaced by the negative prompt as the base block, no phases; audio kept
    assert torch.equal(out.tokens[0, :4], negative) and not out.tokens[0, 4:].any()
    assert out.block_ids[0].tolist() == [0] * 4 + [-1] * 6
    assert out.frame_phases[0, :, 0].all() and not out.frame_phases[0, :, 1:].any()
    assert torch.equal(out_audio[0], audio[0])
    # sample 1: text kept, audio zeroed
    for a, b in ((out.tokens, text.tokens), (out.block_ids, text.block_ids), (out.frame_phases, text.frame_phases)):
        assert torch.equal(a[1], b[1]) and a.shape == b.shape
    assert torch.equal(out_audio[1], torch.zeros(7, 6))
    # the input is left alone
    assert torch.equal(text.tokens[0, :3], torch.ones(3, 4))


def test_nothing_flagged_is_the_identity_and_no_audio_branch_passes():
    text, audio = _text(), torch.randn(2, 7, 6)
    out, out_audio = unconditional_inputs(text, audio, torch.zeros(1, 4), drop_text=torch.zeros(2, dtype=torch.bool),
                                          drop_audio=torch.zeros(2, dtype=torch.bool))
    assert torch.equal(out.tokens, text.tokens) and torch.equal(out.block_ids, text.block_ids) and torch.equal(out_audio, audio)
    assert unconditional_inputs(text, None, torch.zeros(1, 4), drop_text=torch.ones(2, dtype=torch.bool),
                                drop_audio=torch.ones(2, dtype=torch.bool))[1] is None


def test_bad_shapes_fail_with_the_shape():
    text = _text()
    with pytest.raises(ValueError, match=r"negative must be \(n, 4\)"):
        unconditional_inputs(text, None, torch.zeros(3, 5), drop_text=torch.ones(2, dtype=torch.bool),
                             drop_audio=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="budget"):
        unconditional_inputs(text, None, torch.zeros(11, 4), drop_text=torch.ones(2, dtype=torch.bool),
                             drop_audio=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"must be \(2,\)"):
        unconditional_inputs(text, None, torch.zeros(1, 4), drop_text=torch.ones(3, dtype=torch.bool),
                             drop_audio=torch.ones(2, dtype=torch.bool))
