import pytest
import torch

from model.phase_layout import (
    block_ids_from_lengths,
    collate_text_blocks,
    frame_phase_map,
    latent_frame_times,
    latent_frame_video_frames,
    layout_from_annotation,
    num_latent_frames,
)


def test_wan_vae_temporal_mapping():
    assert num_latent_frames(81) == 21 and num_latent_frames(1) == 1 and num_latent_frames(17) == 5
    assert latent_frame_video_frames(0) == (0, 0)
    assert latent_frame_video_frames(1) == (1, 4)
    assert latent_frame_video_frames(20) == (77, 80)
    times = latent_frame_times(3, fps=25.0)
    torch.testing.assert_close(times, torch.tensor([[0.0, 0.04], [0.04, 0.2], [0.2, 0.36]], dtype=torch.float64))
    with pytest.raises(ValueError, match="fps"):
        latent_frame_times(3, fps=0)


def test_frame_phase_map_overlap_and_gaps():
    # phases [0, 0.2) and [0.36, 0.6); latent frames: [0,.04) [.04,.2) [.2,.36) [.36,.52) [.52,.68)
    fmap = frame_phase_map([(0.0, 0.2), (0.36, 0.6)], num_latent=5, fps=25.0)
    expected = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 1]], dtype=torch.bool)
    assert torch.equal(fmap, expected)  # frame 2 is uncovered: base only; touching boundaries do not overlap
    # a phase boundary inside a latent frame: that frame sees both phases
    fmap = frame_phase_map([(0.0, 0.3), (0.3, 0.68)], num_latent=5, fps=25.0)
    assert fmap[2].tolist() == [True, True, True]


def test_global_routing_shows_every_phase_to_every_frame(make_annotation):
    phases = [(0.0, 0.2), (0.36, 0.6)]
    fmap = frame_phase_map(phases, num_latent=5, fps=25.0, routing="global")
    assert fmap.shape == (5, 3) and fmap.all()
    assert frame_phase_map([], num_latent=5, fps=25.0, routing="global").shape == (5, 1)
    lay = layout_from_annotation(make_annotation([(0.0, 0.3, "raises hand"), (0.3, 0.68, "nods")]), routing="global")
    assert lay.frame_phases.all()
    # padding stays hidden: a global sample next to one with more phases keeps False columns past its own
    text = collate_text_blocks([[torch.ones(2, 4), torch.ones(1, 4)], [torch.ones(1, 4)] * 3],
                               [fmap[:, :2], frame_phase_map(phases, 5, 25.0, routing="global")])
    assert text.frame_phases[0, :, 2].any().item() is False and text.frame_phases[1].all()
    with pytest.raises(ValueError, match="phase_routing must be one of"):
        frame_phase_map(phases, num_latent=5, fps=25.0, routing="everywhere")


def test_layout_from_annotation(make_annotation):
    annotation = make_annotation
    lay = layout_from_annotation(annotation([(0.0, 0.3, "raises hand"), (0.3, 0.68, "nods")]))
    assert lay.texts[1:] == ("raises hand", "nods") and lay.num_phases == 2
    assert lay.frame_phases.shape == (5, 3)
    stage1 = layout_from_annotation(annotation([(0.0, 0.3, "raises hand")]), use_phases=False)
    assert stage1.frame_phases.shape == (5, 1) and stage1.frame_phases.all()
    with pytest.raises(ValueError, match="end_s"):
        layout_from_annotation(annotation([(0.5, 0.5, "x")]))


def test_block_ids_and_collate_mixed_phase_counts():
    assert block_ids_from_lengths([2, 1, 3], total=8).tolist() == [0, 0, 1, 2, 2, 2, -1, -1]
    with pytest.raises(ValueError, match="budget"):
        block_ids_from_lengths([5, 5], total=8)
    samples = [[torch.randn(n, 4) for n in lens] for lens in ([3], [2, 4], [1, 1, 2, 1, 3, 2])]
    fmaps = [torch.ones(5, len(s), dtype=torch.bool) for s in samples]
    batch = collate_text_blocks(samples, fmaps)
    assert batch.tokens.shape == (3, 10, 4) and batch.frame_phases.shape == (3, 5, 6)
    assert batch.block_ids[0].tolist() == [0, 0, 0] + [-1] * 7
    assert batch.block_ids[2].tolist() == [0, 1, 2, 2, 3, 4, 4, 4, 5, 5]
    assert not batch.frame_phases[0, :, 1:].any()  # absent phases are never visible
    torch.testing.assert_close(batch.tokens[1, :6], torch.cat(samples[1]))
    assert batch.tokens[1, 6:].abs().max() == 0
