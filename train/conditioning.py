"""Frozen encoders that turn a data batch into DiT inputs: VAE latents, PACA text, audio windows.

Media batches are encoded on the trainer's device (VAE, UMT5, wav2vec2, all frozen); latent
batches from `actavatar encode` already hold the encoder outputs and only get packed. The
phase routing (`data.phase_routing`) shapes the frame->phase maps; `ModelInputs.with_dropped`
applies guidance dropout with the sampler's own unconditional inputs (`model.guidance`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from dataset.errors import UserError
from model.audio_windows import AudioWindowConfig, batch_audio_windows
from model.guidance import unconditional_inputs
from model.phase_layout import PhaseLayout, TextBatch, collate_text_blocks, frame_phase_map, num_latent_frames


@dataclass(frozen=True, kw_only=True, slots=True)
class EncodersConfig:
    """Args:
    text: UMT5 folder or HF id (a Wan diffusers pipeline works: text_encoder/ + tokenizer/).
    vae: AutoencoderKLWan folder or HF id (or a pipeline with vae/).
    audio: wav2vec2 folder or HF id.
    image: CLIP vision tower + processor (a folder, or a Wan2.1-I2V pipeline folder/id); needed by DiTs
        with image tokens (`model.image_dim`, Wan2.1 I2V).
    max_base_tokens / max_phase_tokens: text truncation per block (PACA packing budget).
    audio_context_s: seconds of audio context on each side of a latent frame.
    local_files_only: never reach the network for HF ids.
    """

    text: str = ""
    vae: str = ""
    audio: str = ""
    image: str = ""
    max_base_tokens: int = 256
    max_phase_tokens: int = 32
    audio_context_s: float = 0.04
    local_files_only: bool = True

    def __post_init__(self) -> None:
        for key in ("max_base_tokens", "max_phase_tokens"):
            if getattr(self, key) < 1:
                raise UserError(f"encoders.{key} must be >= 1, got {getattr(self, key)}")
        if self.audio_context_s < 0:
            raise UserError(f"encoders.audio_context_s must be >= 0, got {self.audio_context_s}")


@dataclass(slots=True)
class ModelInputs:
    """Everything `VideoDiT.forward` needs besides the noisy latents and the timestep."""

    latents: torch.Tensor  # (B, z, F, h, w) clean, normalised
    tokens: torch.Tensor  # (B, L, C)
    block_ids: torch.Tensor  # (B, L)
    frame_phases: torch.Tensor  # (B, F, 1 + P)
    audio: torch.Tensor  # (B, Ta, C)
    audio_index: torch.Tensor  # (B, F, W)
    audio_mask: torch.Tensor  # (B, F, W)
    face_box: torch.Tensor  # (B, 4), NaN = none
    negative: torch.Tensor | None = None  # (n, C) negative prompt base block; None = unknown (no text dropout)
    condition: torch.Tensor | None = None  # (B, stride + z, F, h, w) Wan2.1 I2V [mask | condition latents]
    image: torch.Tensor | None = None  # (B, Li, C) CLIP tokens of the first frame (Wan2.1 I2V)
    motion: torch.Tensor | None = None  # (B, 2) face / body motion intensity, NaN = none (models with model.motion)
    pose: torch.Tensor | None = None  # (B, F_video, K, 3) keypoints, confidence 0 = none (models with model.pose)
    keypoints: torch.Tensor | None = None  # the same keypoints for the losses (lip tracing), never dropped
    audio_intensity: torch.Tensor | None = None  # (B, F_video) in [0, 1], NaN = none (models with model.refocus)
    face_reference: torch.Tensor | None = None  # (B, z, h, w) clean latent frame 0, read over face_box (model.face_identity)

    def with_pose_dropped(self, drop: torch.Tensor) -> ModelInputs:
        """The same batch with the flagged samples' keypoints removed (pose-free)."""
        if self.pose is None:
            return self
        from model.pose import without_pose

        return dataclasses.replace(self, pose=without_pose(self.pose, drop))

    def with_motion_dropped(self, drop: torch.Tensor) -> ModelInputs:
        """The same batch with the flagged samples' motion intensities removed (NaN: unconditioned)."""
        if self.motion is None:
            return self
        return dataclasses.replace(self, motion=self.motion.masked_fill(drop.to(self.motion.device)[:, None], float("nan")))

    def with_dropped(self, drop_text: torch.Tensor, drop_audio: torch.Tensor) -> ModelInputs:
        """The same batch with the flagged samples' text / audio replaced by the unconditional inputs."""
        if bool(drop_text.any()) and self.negative is None:
            raise ValueError("guidance text dropout needs the negative prompt's features: latent shards written by an "
                             "older `actavatar encode` have none; re-encode them or set guidance.text_drop=0 guidance.both_drop=0")
        text = TextBatch(tokens=self.tokens, block_ids=self.block_ids, frame_phases=self.frame_phases)
        negative = self.negative if self.negative is not None else self.tokens.new_zeros(0, self.tokens.shape[2])
        text, audio = unconditional_inputs(text, self.audio, negative, drop_text=drop_text, drop_audio=drop_audio)
        intensity = self.audio_intensity
        if intensity is not None:  # derived from the audio: dropped with it (the sampler's audio-free branches lack it too)
            intensity = intensity.masked_fill(drop_audio.to(intensity.device)[:, None], float("nan"))
        return dataclasses.replace(self, tokens=text.tokens, block_ids=text.block_ids, frame_phases=text.frame_phases, audio=audio,
                                   audio_intensity=intensity)

    def dit_kwargs(self) -> dict[str, torch.Tensor]:
        kwargs = {
            "block_ids": self.block_ids,
            "frame_phases": self.frame_phases,
            "audio": self.audio,
            "audio_index": self.audio_index,
            "audio_mask": self.audio_mask,
        }
        if self.image is not None:  # kept when text/audio drop: diffusers' I2V feeds them to every branch
            kwargs["image"] = self.image
        if self.motion is not None:
            kwargs["motion"] = self.motion
        if self.pose is not None:
            kwargs["pose"] = self.pose
        if self.audio_intensity is not None:
            kwargs["audio_intensity"] = self.audio_intensity
        if self.face_reference is not None:  # like the reference image: every guidance branch keeps it
            kwargs["face_reference"] = self.face_reference
            kwargs["face_box"] = self.face_box
        return kwargs


class Conditioner:
    """Holds the frozen encoders (loaded once) and builds `ModelInputs`.

    Args:
        config: where the encoders come from.
        text_len: the DiT's text token budget.
        vae_stride: (t, h, w) VAE compression.
        device: where the encoders run.
        need_media_encoders: False for latent shards (no VAE; the text/audio encoders are skipped too).
        phase_routing: "per_frame" or "global" (`data.phase_routing`).
        negative_prompt: the caption of text-dropped samples (`guidance.negative_prompt`); media batches
            encode it once here, latent batches carry the features `actavatar encode` stored.
        motion: the DiT takes motion intensities (`model.motion`): pass the batch's (`batch["motion"]`).
        pose: the DiT takes per-frame keypoints (`model.pose`): pass the batch's (`batch["pose"]`).
        refocus: the DiT takes per-frame audio intensity (`model.refocus`): pass the batch's
            (`batch["audio_intensity"]`).
        face_identity: the DiT reads the reference's face (`model.face_identity`): pass the window's
            first latent frame (the reference image's latent) with the batch's face box.
    """

    def __init__(
        self, config: EncodersConfig, *, text_len: int, vae_stride: tuple[int, int, int], device: torch.device,
        need_media_encoders: bool = True, phase_routing: str = "per_frame", negative_prompt: str = "",
        i2v: bool = False, image_tokens: bool = False, motion: bool = False, pose: bool = False, refocus: bool = False,
        face_identity: bool = False,
    ) -> None:
        self.config, self.text_len, self.vae_stride, self.device = config, text_len, vae_stride, device
        self.phase_routing, self.negative_prompt = phase_routing, negative_prompt
        self.i2v, self.motion, self.pose, self.refocus = i2v, motion, pose, refocus
        self.face_identity = face_identity
        self.text = self.vae = self.audio = self.image = None
        self.negative: torch.Tensor | None = None
        if need_media_encoders:
            from train.pretrained import load_audio_encoder, load_text_encoder, load_vae

            for key in ("text", "vae", "audio"):
                if not getattr(config, key):
                    raise ValueError(f"encoders.{key} must name a model folder or HF id for media shards, got ''")
            lo = config.local_files_only
            self.text = load_text_encoder(
                config.text, local_files_only=lo, device=device, max_length=text_len,
                max_base_tokens=config.max_base_tokens, max_phase_tokens=config.max_phase_tokens,
            )
            self.vae = load_vae(config.vae, local_files_only=lo, device=device)
            self.audio = load_audio_encoder(config.audio, local_files_only=lo, device=device)
            with torch.no_grad():
                self.negative = self.text.encode_base(negative_prompt).float()
            if image_tokens:
                from train.pretrained import load_image_encoder

                if not config.image:
                    raise UserError("the model takes CLIP image tokens (model.image_dim, Wan2.1 I2V): set encoders.image to a "
                                    "CLIP vision folder or a Wan2.1-I2V pipeline")
                self.image = load_image_encoder(config.image, local_files_only=lo, device=device)

    @property
    def feature_hz(self) -> float:
        return self.audio.feature_hz if self.audio is not None else 50.0

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(video.to(self.device))

    @torch.no_grad()
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.audio(audio.to(self.device)).float()

    @torch.no_grad()
    def encode_text_blocks(self, texts: tuple[str, ...]) -> list[torch.Tensor]:
        """Base then phase texts -> per-block features (what latent shards cache)."""
        base = self.text.encode([texts[0]], self.config.max_base_tokens)
        return base + self.text.encode(list(texts[1:]), self.config.max_phase_tokens)

    def layouts(self, batch: dict[str, Any], num_latent: int) -> list[PhaseLayout]:
        t = self.vae_stride[0]
        return [
            PhaseLayout(texts=tuple(texts), frame_phases=frame_phase_map(spans, num_latent, fps, t, self.phase_routing))
            for texts, spans, fps in zip(batch["texts"], batch["spans"], batch["fps"], strict=True)
        ]

    @torch.no_grad()
    def __call__(self, batch: dict[str, Any]) -> ModelInputs:
        num_latent = num_latent_frames(batch["num_frames"], self.vae_stride[0])
        layouts = self.layouts(batch, num_latent)
        if "latents" in batch:
            latents = batch["latents"].to(self.device)
            audio = batch["audio_features"].to(self.device)
            blocks = [[b.to(self.device) for b in sample] for sample in batch["text_blocks"]]
            text = collate_text_blocks(blocks, [lay.frame_phases for lay in layouts], total=self.text_len)
            negative = self._cached_negative(batch)
            condition = batch["condition"].to(self.device) if "condition" in batch else None  # Wan2.1 I2V, cached
            image = batch["image_tokens"].to(self.device) if "image_tokens" in batch else None
        else:
            latents = self.encode_video(batch["video"])
            audio = self.encode_audio(batch["audio"])
            text = self.text.encode_layouts(layouts)
            negative = self.negative
            condition, image = self.reference_inputs(batch["video"][:, :, 0], batch["num_frames"])
        if latents.shape[2] != num_latent:
            raise ValueError(f"latents have {latents.shape[2]} frames, {batch['num_frames']} video frames need {num_latent}")
        windows = AudioWindowConfig(context_s=self.config.audio_context_s, feature_hz=self.feature_hz, stride=self.vae_stride[0])
        index, mask = batch_audio_windows(num_latent, batch["fps"], [audio.shape[1]] * audio.shape[0], windows)
        return ModelInputs(
            latents=latents.float(),
            tokens=text.tokens.to(self.device),
            block_ids=text.block_ids.to(self.device),
            frame_phases=text.frame_phases.to(self.device),
            audio=audio,
            audio_index=index.to(self.device),
            audio_mask=mask.to(self.device),
            face_box=batch["face_box"],
            negative=negative,
            condition=condition,
            image=image,
            motion=batch["motion"].to(self.device) if self.motion and "motion" in batch else None,
            pose=batch["pose"].to(self.device) if self.pose and "pose" in batch else None,
            keypoints=batch.get("pose"),
            audio_intensity=batch["audio_intensity"].to(self.device) if self.refocus and "audio_intensity" in batch else None,
            face_reference=latents[:, :, 0].float() if self.face_identity else None,
        )

    @torch.no_grad()
    def reference_inputs(self, first: torch.Tensor, num_frames: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Wan2.1 I2V inputs from the windows' first frames (B, 3, H, W) in [-1, 1]: [mask | latents of
        [first frame, zeros…]] (as `evaluation.sample` and diffusers' pipeline build them) and the
        frame's CLIP tokens; (None, None) for other reference modes."""
        from model.reference import i2v_condition

        condition = image = None
        first = first.to(self.device)
        if self.i2v:
            condition = i2v_condition(self.vae.encode_reference(first, num_frames), num_frames, stride=self.vae_stride[0])
        if self.image is not None:
            frames = ((first.permute(0, 2, 3, 1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            image = self.image(list(frames))
        return condition, image

    def _cached_negative(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """The negative prompt features latent shards carry, after checking they encode our prompt."""
        if "negative" not in batch:
            return None
        for key, prompt in zip(batch["key"], batch["negative_prompt"], strict=True):
            if prompt != self.negative_prompt:
                raise ValueError(f"latent sample {key} was encoded with negative prompt {prompt!r}, guidance.negative_prompt is "
                                 f"{self.negative_prompt!r}: re-run `actavatar encode` with guidance.negative_prompt set, or match it")
        return batch["negative"][0].to(self.device)
