"""`actavatar pose`: a driving video's per-frame keypoints as a `pose.npy` for `actavatar sample --pose`.

    actavatar pose --input driving.mp4 --output driving.pose.npy [--size 832x480] [--backend mediapipe]
    actavatar pose --input synth/raw/video_0001.mp4 --output p.npy --backend reader --size 64x64

The video is read at the corpus rate (25 fps, the nearest source frame per output frame, as clips
are normalised) and each frame goes through the corpus pipeline's keypoint backend
(`annotate.pose.PoseEstimator`: `mediapipe` = BlazeFace's face keypoints, `reader` = the synthetic
puppets' exact reader). `--size WxH` maps the keypoints into the frame the sampler generates (its
reference image is scaled to cover WxH and centre-cropped, `model.resize.cover_crop`): keypoints
cropped away become unmeasured. Without it they stay normalised to the driving video's frame.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from dataset.command import standalone_main
from dataset.errors import UserError

HELP = "read a driving video's per-frame keypoints into a pose.npy for `actavatar sample --pose`"
CHUNK = 64  # frames per estimator call (bounded memory for long videos)
MAX_SIDE = 640  # frames are downscaled to this long side before the backend (keypoints are normalised)


def _frames(path: Path, fps: float) -> Iterator[np.ndarray]:
    """RGB uint8 frames at `fps` (the nearest source frame per output time), long side <= MAX_SIDE."""
    import av

    from annotate.timeline import Scaler, timeline_frames

    scaler = Scaler("AREA")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path}: no video stream")
            for _, frame in timeline_frames(container, fps=fps):
                scale = min(1.0, MAX_SIDE / max(frame.width, frame.height))
                yield scaler(frame, width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale)))
    except av.error.FFmpegError as err:
        raise UserError(f"{path}: cannot decode: {err}") from None


def video_keypoints(path: str | Path, backend: str = "mediapipe", size: tuple[int, int] | None = None,
                    progress: bool = True) -> np.ndarray:
    """(F, K, 3) keypoints of the video at 25 fps (`dataset.pose` layout), normalised to the frame
    or, with `size` = (width, height), to the sampler's cover-cropped output frame."""
    from annotate.pose import PoseEstimator
    from dataset.pose import crop_pose
    from dataset.schema import VIDEO_FPS
    from model.resize import cover_crop_box

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--input: file not found: {path}")
    estimator = PoseEstimator(backend)
    pieces, chunk, shape = [], [], None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="pose", unit="frame")
    try:
        for frame in _frames(path, VIDEO_FPS):
            shape = frame.shape
            chunk.append(frame)
            if len(chunk) == CHUNK:
                pieces.append(estimator(np.stack(chunk)))
                chunk = []
                if bar is not None:
                    bar.update(CHUNK)
        if chunk:
            pieces.append(estimator(np.stack(chunk)))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        estimator.close()
        if bar is not None:
            bar.close()
    if not pieces:
        raise UserError(f"{path}: no frames")
    pose = np.concatenate(pieces)
    if size is not None:
        h, w = shape[:2]
        out_w, out_h = size
        scale, _, top, left = cover_crop_box(h, w, out_h, out_w)
        pose = crop_pose(pose, h, w, scale, top, left, out_h, out_w)
    return pose


def parse_size(text: str) -> tuple[int, int]:
    """'832x480' -> (832, 480)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must be WIDTHxHEIGHT, e.g. 832x480, got {text!r}") from None
    if w < 1 or h < 1:
        raise UserError(f"--size must be positive, got {text!r}")
    return w, h


def _pose(args: argparse.Namespace) -> int:
    from dataset.atomic import atomic_write_bytes
    from dataset.pose import BODY, FACE, LEFT_HAND, RIGHT_HAND, encode_pose

    pose = video_keypoints(args.input, args.backend, parse_size(args.size) if args.size else None, progress=not args.no_progress)
    atomic_write_bytes(Path(args.output), encode_pose(pose))
    seen = pose[..., 2] > 0
    print(f"{args.output}: {len(pose)} frames at 25 fps; face keypoints in {seen[:, list(FACE)].any(1).mean():.0%} of frames, "
          f"body keypoints in {seen[:, list(BODY)].any(1).mean():.0%}, hands in {seen[:, list(RIGHT_HAND + LEFT_HAND)].any(1).mean():.0%}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="VIDEO", help="driving video (any format FFmpeg reads)")
    parser.add_argument("--output", required=True, metavar="FILE", help="the pose.npy to write")
    parser.add_argument("--backend", default="mediapipe", choices=("mediapipe", "reader"),
                        help="mediapipe: BlazeFace face keypoints (real footage); reader: the synthetic puppets' exact "
                             "reader (default mediapipe)")
    parser.add_argument("--size", metavar="WxH", help="the sampler's output size: keypoints normalised to its cover-cropped "
                        "frame (default: the video's own frame)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_pose)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone_main("python -m evaluation.pose_cli", HELP, argv, configure=configure)


if __name__ == "__main__":
    raise SystemExit(main())
