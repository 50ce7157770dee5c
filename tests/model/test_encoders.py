"""Encoder wrappers on tiny real architectures: UMT5 text blocks, wav2vec2 layer mix, Wan VAE."""

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from model import tiny  # noqa: E402
from model.audio_encoder import AudioEncoder  # noqa: E402
from model.phase_layout import layout_from_annotation  # noqa: E402
from model.text_encoder import TextEncoder  # noqa: E402
from model.vae import VideoVAE  # noqa: E402


@pytest.fixture(scope="module")
def text_encoder() -> TextEncoder:
    tokenizer, encoder = tiny.tiny_umt5()
    return TextEncoder(tokenizer, encoder, max_length=64, max_base_tokens=32, max_phase_tokens=8)


def test_text_encode_trims_padding_like_wan(text_encoder):
    short, long = text_encoder.encode(["nods", "raises her right hand while smiling at the camera"])
    assert short.shape[1] == 32 and short.shape[0] < long.shape[0]
    # trimming is exact: the short text alone gives the same features as inside a padded batch
    alone = text_encoder.encode(["nods"])[0]
    torch.testing.assert_close(alone, short, atol=1e-5, rtol=1e-5)


def test_text_layouts_pack_blocks_with_ids(text_encoder, make_annotation):
    layouts = [
        layout_from_annotation(make_annotation([])),
        layout_from_annotation(make_annotation([(0.0, 0.3, "raises her right hand"), (0.3, 0.68, "nods")])),
    ]
    batch = text_encoder.encode_layouts(layouts)
    assert batch.tokens.shape == (2, 64, 32) and batch.frame_phases.shape == (2, 5, 3)
    ids = batch.block_ids
    assert set(ids[0].tolist()) == {0, -1} and set(ids[1].tolist()) == {0, 1, 2, -1}
    assert batch.tokens[ids == -1].abs().max() == 0
    torch.testing.assert_close(batch.tokens[1, ids[1] == 1], text_encoder.encode(["raises her right hand"], max_tokens=8)[0])


def test_audio_encoder_averages_layers_has_no_untrained_parameters_and_rate():
    _, w2v = tiny.tiny_wav2vec2()
    enc = AudioEncoder(w2v)
    assert enc.feature_hz == 50.0 and enc.num_layers == 3
    assert not any(p.requires_grad for p in enc.parameters())  # nothing that would silently never train
    enc.train()
    assert not enc.wav2vec2.training  # frozen backbone never samples SpecAugment masks
    wav = torch.randn(2, 16000)
    feats = enc(wav)
    assert feats.shape == (2, 49, 32)
    wav_n = (wav - wav.mean(1, keepdim=True)) / torch.sqrt(wav.var(1, unbiased=False, keepdim=True) + 1e-7)
    with torch.no_grad():
        hidden = w2v(wav_n, output_hidden_states=True).hidden_states
    torch.testing.assert_close(feats, torch.stack(hidden).mean(0), atol=1e-5, rtol=1e-5)


def test_vae_normalises_and_keeps_wan_strides():
    vae = VideoVAE(tiny.tiny_vae())
    assert (vae.temporal_stride, vae.spatial_stride, vae.latent_channels) == (4, 8, 4)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    z = vae.encode(video)
    assert z.shape == (1, 4, 3, 2, 2)
    with torch.no_grad():
        vae.mean.fill_(0.5)
        vae.std.fill_(2.0)
    torch.testing.assert_close(vae.encode(video), (z - 0.5) / 2.0)
    assert vae.decode(z).shape == (1, 3, 9, 16, 16)
    assert vae.encode_reference(video[:, :, 0], 9).shape == (1, 4, 3, 2, 2)
