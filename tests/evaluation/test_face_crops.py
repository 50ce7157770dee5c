"""syncnet_python-style face-track crops and the detector hook."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from evaluation.face_crops import make_crop_faces, track_crops


def test_crop_is_centred_on_the_box_and_224_square():
    frames = np.zeros((5, 120, 160, 3), np.uint8)
    frames[:, 40:80, 60:100] = 255  # a white 'face' 40 px wide
    crops = track_crops(frames, np.tile([60, 40, 100, 80], (5, 1)))
    assert crops.shape == (5, 224, 224, 3)
    # Horizontal span cx ± 1.4 s: the face's 40 px cover 40 / 56 of the crop width, centred.
    row = crops[0, 60, :, 0] > 128
    cols = np.flatnonzero(row)
    assert abs((cols[0] + cols[-1]) / 2 - 111.5) <= 2
    assert abs(len(cols) / 224 - 40 / 56) < 0.03
    # Vertically the crop starts at the box top (cy - s) and extends 1.8 s below the centre.
    assert crops[0, 2, 112, 0] > 128 and crops[0, -3, 112, 0] < 128


def test_hook_fills_missed_frames_and_errors_without_faces():
    frames = np.full((4, 64, 64, 3), 50, np.uint8)
    face = SimpleNamespace(box=(0.25, 0.25, 0.75, 0.75))
    crop = make_crop_faces(lambda f: [face] if f[0, 0, 0] == 50 else [])
    assert crop(frames).shape == (4, 224, 224, 3)
    frames[1:, 0, 0, 0] = 0  # only frame 0 has a 'face'
    assert crop(frames).shape == (4, 224, 224, 3)
    with pytest.raises(ValueError, match="no face detected in any of 4 frames"):
        make_crop_faces(lambda f: [])(frames)
