"""VideoDiT: Wan-architecture video DiT with PACA, per-frame audio attention and progressive alignment.

    latents (B, C, F, H, W) -> 1x2x2 patches -> blocks (self-attn + RoPE, PACA text [+ image],
    per-frame audio, FFN; adaLN from the timestep) -> head -> (B, C_out, F, H, W)

Pure torch: weights come from `model.wan_import` (diffusers Wan) or a trainer checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from model.alignment import AlignmentConfig, ProgressiveAlignment
from model.attention import BACKENDS, Backend
from model.audio_attention import AudioAttentionConfig
from model.audio_windows import AudioProjector, gather_windows
from model.block import DiTBlock
from model.face_identity import FaceIdentityConfig, FaceTokens, has_face
from model.motion import MotionConfig, MotionEmbedding
from model.pose import PoseConfig, PoseEmbedding, has_pose
from model.refocus import AudioPoseRefocus, RefocusConfig
from model.embeddings import FP32LayerNorm, ImageProjection, Modulation, RotaryEmbedding3D, TextProjection, TimestepEmbedding
from model.phase_attention import PhaseAttentionConfig, PhaseKeys


@dataclass(frozen=True, kw_only=True, slots=True)
class DiTConfig:
    """Architecture of the video DiT (Wan names in brackets where they differ).

    Args:
        dim: model width [num_attention_heads * attention_head_dim].
        num_layers: transformer blocks.
        num_heads: attention heads; dim / num_heads must be even (RoPE pairs).
        ffn_dim: FFN hidden width.
        in_channels: latent channels in (I2V: noisy latent + mask + condition latent).
        out_channels: latent channels predicted.
        text_dim: UMT5 feature width (4096 for umt5-xxl).
        freq_dim: sinusoidal timestep features.
        patch_size: (t, h, w) patch.
        eps: norm epsilon.
        qk_norm: RMS q/k norm across heads.
        cross_attn_norm: affine LayerNorm before cross-attention.
        image_dim: CLIP image token width for Wan2.1-I2V image cross-attention; None = none.
        image_pos_embed_len: learned image-token positions (Wan FLF2V); None = none.
        rope_theta: RoPE base.
        text_len: text token budget the encoders pad to (Wan: 512).
        vae_stride: VAE (t, h, w) compression, for layouts and windows.
        attention_backend: kernel for every attention layer.
        phase: PACA options.
        audio: audio branch; None = no audio attention (a plain Wan model).
        alignment: per-layer text/audio weights.
        motion: motion-intensity modulation (FantasyTalking, `model.motion`); None = none.
        pose: per-frame keypoint condition with pose-free inference (ApoAvatar, `model.pose`); None = none.
        av_interaction: frame-wise audio–video interaction before every audio cross-attention
            (ApoAvatar, `model.av_interaction`).
        refocus: audio–pose prior refocusing (ApoAvatar, `model.refocus`): the per-frame audio
            intensity scales the pose branch's tokens and gives pose-free samples a pose prior;
            needs `pose`. None = none.
        face_identity: face-focused cross-attention for identity (FantasyTalking,
            `model.face_identity`): every block's video tokens attend to the reference latent's face
            region. None = none.
    """

    dim: int
    num_layers: int
    num_heads: int
    ffn_dim: int
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    image_dim: int | None = None
    image_pos_embed_len: int | None = None
    rope_theta: float = 10000.0
    text_len: int = 512
    vae_stride: tuple[int, int, int] = (4, 8, 8)
    attention_backend: Backend = "sdpa"
    phase: PhaseAttentionConfig = field(default_factory=PhaseAttentionConfig)
    audio: AudioAttentionConfig | None = field(default_factory=AudioAttentionConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    motion: MotionConfig | None = None
    pose: PoseConfig | None = None
    av_interaction: bool = False
    refocus: RefocusConfig | None = None
    face_identity: FaceIdentityConfig | None = None

    def __post_init__(self) -> None:
        for key in ("dim", "num_layers", "num_heads", "ffn_dim", "in_channels", "out_channels", "text_dim", "freq_dim", "text_len"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key} must be > 0, got {getattr(self, key)}")
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ValueError(f"model.dim / model.num_heads must be an even integer, got {self.dim} / {self.num_heads}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"model.patch_size must be three ints >= 1, got {self.patch_size}")
        if len(self.vae_stride) != 3 or min(self.vae_stride) < 1:
            raise ValueError(f"model.vae_stride must be three ints >= 1, got {self.vae_stride}")
        if self.attention_backend not in BACKENDS:
            raise ValueError(f"model.attention_backend must be one of {BACKENDS}, got {self.attention_backend!r}")
        if self.image_pos_embed_len is not None and self.image_dim is None:
            raise ValueError(f"model.image_pos_embed_len needs model.image_dim, got {self.image_pos_embed_len}")
        if self.refocus is not None and self.pose is None:
            raise ValueError("model.refocus scales the pose branch: it needs model.pose")
        if self.av_interaction and self.audio is None:
            raise ValueError("model.av_interaction needs the audio branch (model.audio is None)")
        if self.audio is not None and self.audio.layers is not None and max(self.audio.layers, default=-1) >= self.num_layers:
            raise ValueError(f"model.audio.layers must be < num_layers={self.num_layers}, got {self.audio.layers}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def has_audio(self, layer: int) -> bool:
        return self.audio is not None and (self.audio.layers is None or layer in self.audio.layers)


def _init_linear_or_norm(m: nn.Module) -> None:
    """Wan's rule for one module: xavier linears with zero bias, unit norms."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:  # LoRA's adapter linears have none
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.RMSNorm)) and m.weight is not None:
        nn.init.ones_(m.weight)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


def zero_init_prefixes(config: DiTConfig) -> tuple[str, ...]:
    """State-dict prefixes of the optional branches `config` has (they start with zero output)."""
    prefixes = [f"{name}." for name, branch in (("motion_embed", config.motion), ("pose_embed", config.pose)) if branch is not None]
    if config.av_interaction:
        prefixes += [f"blocks.{i}.av_interaction." for i in range(config.num_layers) if config.has_audio(i)]
    if config.refocus is not None:
        prefixes.append("refocus.")
    if config.face_identity is not None:
        prefixes += ["face_tokens.", *(f"blocks.{i}.face_attn." for i in range(config.num_layers))]
    return tuple(prefixes)


class VideoDiT(nn.Module):
    """The ActAvatar DiT. Build with `model.registry.build_model(config)`.

    Args:
        config: architecture; see `DiTConfig`.
    """

    # Sharding/precision hints for train/parallelize.py (no FSDP code here).
    _no_split_modules = ("DiTBlock",)
    # Modules whose parameters stay fp32 when the rest runs in bf16, as Wan keeps them (time embedding
    # and projection, adaLN tables, norms, the alignment schedule): `fp32_modules()`.
    _keep_in_fp32 = ("time_embed", "time_proj", "modulation", "head_modulation", "norm1", "norm2", "norm3", "alignment",
                     "motion_embed")

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        # 1. Patch & position embedding
        self.patch_embed = nn.Conv3d(config.in_channels, dim, kernel_size=config.patch_size, stride=config.patch_size)
        self.rope = RotaryEmbedding3D(config.head_dim, config.rope_theta)
        # 2. Condition embeddings: timestep, text, optional image and audio
        self.time_embed = TimestepEmbedding(config.freq_dim, dim)
        self.time_proj = nn.Linear(dim, 6 * dim)
        self.text_embed = TextProjection(config.text_dim, dim)
        self.image_embed = (
            ImageProjection(config.image_dim, dim, config.image_pos_embed_len) if config.image_dim is not None else None
        )
        self.audio_proj = AudioProjector(config.audio.audio_dim, dim) if config.audio is not None else None
        self.alignment = ProgressiveAlignment(config.num_layers, config.alignment)
        # 3. Transformer blocks
        self.blocks = nn.ModuleList(DiTBlock(config, audio=config.has_audio(i)) for i in range(config.num_layers))
        # 4. Output norm & projection
        self.norm_out = FP32LayerNorm(dim, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, config.out_channels * math.prod(config.patch_size))
        self.head_modulation = Modulation(2, dim)
        # 5. Optional conditions added to the time embedding. Registered last, so a model with them
        # draws the same initial weights for everything else as one without (same seed).
        self.motion_embed = MotionEmbedding(config.motion, dim) if config.motion is not None else None
        self.pose_embed = (PoseEmbedding(config.pose, dim, config.patch_size, config.vae_stride[0])
                           if config.pose is not None else None)
        self.refocus = (AudioPoseRefocus(config.refocus, dim, config.vae_stride[0])
                        if config.refocus is not None else None)
        self.face_tokens = (FaceTokens(config.face_identity, config.out_channels, dim)
                            if config.face_identity is not None else None)
        # checkpoints written before the adaLN tables became modules name them without ".table"
        self.register_load_state_dict_pre_hook(_upgrade_modulation_keys)

    def fsdp_units(self) -> list[str]:
        """Submodule names to shard as separate FSDP units (the root holds the rest)."""
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def fp32_modules(self) -> list[str]:
        """Names of the outermost submodules in `_keep_in_fp32` that hold parameters: kept fp32 by
        `cast_keeping_fp32` and sharded as fp32 FSDP2 units (train/parallelize.py)."""
        names: list[str] = []
        for name, module in self.named_modules():
            if not name or name.rsplit(".", 1)[-1] not in self._keep_in_fp32 or not any(True for _ in module.parameters()):
                continue
            if not any(name.startswith(kept + ".") for kept in names):
                names.append(name)
        return names

    def new_parameter_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of parameters that Wan checkpoints do not have (ActAvatar additions)."""
        prefixes = ["alignment.", "audio_proj."]
        prefixes += [f"blocks.{i}.audio_attn." for i, b in enumerate(self.blocks) if b.audio_attn is not None]
        prefixes += self.zero_init_prefixes()
        return tuple(prefixes)

    def zero_init_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of optional branches that start neutral (zero output): a checkpoint
        without them loads into a model with them and predicts exactly as before."""
        return zero_init_prefixes(self.config)

    def _optional_branches(self) -> list[nn.Module]:
        return [self.get_submodule(prefix[:-1]) for prefix in zero_init_prefixes(self.config)]

    @torch.no_grad()
    def init_weights(self) -> None:
        """Wan's initialisation (xavier linears, small embeddings, zero head); zero audio outputs.

        Sets every parameter and non-persistent buffer, so it also completes a model materialised
        with `to_empty` from the meta device (`build_model` calls it for you unless device="meta").
        """
        # optional branches are initialised last (below), so the draws for everything else are the
        # same with and without them
        optional = {id(m) for branch in self._optional_branches() for m in branch.modules()}
        for m in self.modules():
            if id(m) not in optional:
                _init_linear_or_norm(m)
        nn.init.xavier_uniform_(self.patch_embed.weight.flatten(1))
        nn.init.zeros_(self.patch_embed.bias)
        for m in (*self.text_embed.modules(), *self.time_embed.modules()):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.proj_out.weight)
        dim = self.config.dim
        self.head_modulation.table.copy_(torch.randn_like(self.head_modulation.table) / dim**0.5)
        for block in self.blocks:
            block.modulation.table.copy_(torch.randn_like(block.modulation.table) / dim**0.5)
            if block.audio_attn is not None:
                nn.init.zeros_(block.audio_attn.to_out.weight)
                nn.init.zeros_(block.audio_attn.to_out.bias)
        if self.image_embed is not None and self.image_embed.pos_embed is not None:
            nn.init.zeros_(self.image_embed.pos_embed)
        self.alignment.reset_parameters()
        for branch in self._optional_branches():  # the same rule as above, then each zeroes its output
            for m in branch.modules():
                _init_linear_or_norm(m)
            branch.reset_parameters()

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        *,
        block_ids: torch.Tensor | None = None,
        frame_phases: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_index: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        motion: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        audio_intensity: torch.Tensor | None = None,
        face_reference: torch.Tensor | None = None,
        face_box: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow-matching velocity.

        Args:
            x: (B, C_in, F, H, W) latents (I2V: channel-concatenated condition, see `reference`).
            timestep: (B,) or (B, L) per token (Wan2.2 TI2V: first-frame tokens at t=0).
            text: (B, Lk, text_dim) UMT5 features of base + phase blocks.
            block_ids: (B, Lk) long, 0 base / k phase / -1 pad; None = PACA neutral (all text, as Wan).
            frame_phases: (B, F_lat, 1 + P) bool latent-frame->block map (with block_ids).
            image: (B, Li, image_dim) CLIP tokens (Wan2.1 I2V).
            audio: (B, Ta, audio_dim) audio features (e.g. `AudioEncoder` output).
            audio_index, audio_mask: (B, F_lat, W) window indices and validity (`batch_audio_windows`).
            motion: (B, 2) face / body motion intensities in [0, 1] (`model.motion`); a NaN row or
                None = unconditioned.
            pose: (B, 1 + s * (F - 1), K, 3) per-video-frame keypoints (`model.pose`, `dataset.pose`
                layout; s = the VAE's temporal stride); a sample without any measured keypoint or
                None = pose-free.
            audio_intensity: (B, 1 + s * (F - 1)) per-video-frame audio intensity in [0, 1]
                (`model.refocus`, `dataset.audio_intensity`); a NaN row or None = none.
            face_reference: (B, C_out, H, W) the reference image's latent (`model.face_identity`;
                with face_box); None = no face tokens.
            face_box: (B, 4) the reference's face box (x0, y0, x1, y1) normalised to the frame; a NaN
                row = no face for that sample.
        Returns:
            (B, C_out, F, H, W).
        """
        cfg = self.config
        b, _, n_f, n_h, n_w = x.shape
        pt, ph, pw = cfg.patch_size
        gf, gh, gw = n_f // pt, n_h // ph, n_w // pw
        # Inputs meet the weights' dtype here, at the model boundary (bf16 under FSDP mixed precision,
        # whose own input casting is off): the timestep stays fp32, so t = 997.3 is not rounded to 996
        # before its sinusoid, and RoPE angles stay fp32 (as Wan computes them).
        dtype = self.patch_embed.weight.dtype
        x, text = x.to(dtype), text.to(dtype)
        image = image.to(dtype) if image is not None else None
        audio = audio.to(dtype) if audio is not None else None

        # 1. Patch & position embedding
        rope = self.rope(gf, gh, gw, x.device)  # (1, L, 1, Dh) each
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, L, D), L = F*H*W latent tokens
        pose_tokens = None
        if pose is not None:
            if self.pose_embed is None:
                raise ValueError("pose given but model.pose is None")
            pose = pose.to(x.device)
            pose_tokens = self.pose_embed(pose, (n_f, n_h, n_w)).to(x.dtype)  # zero for pose-free samples
            x = x + pose_tokens
        if audio_intensity is not None:
            if self.refocus is None:
                raise ValueError("audio intensity given but model.refocus is None")
            posed = has_pose(pose) if pose is not None else torch.zeros(b, dtype=torch.bool, device=x.device)
            x = x + self.refocus(audio_intensity.to(x.device), pose_tokens, posed.to(x.device), n_f, (gf, gh, gw)).to(x.dtype)

        # 2. Condition embeddings
        if timestep.ndim not in (1, 2):
            raise ValueError(f"timestep must be (B,) or (B, L), got shape {tuple(timestep.shape)}")
        # the time embedding and its projection run in fp32 (their weights are kept fp32, see
        # `fp32_modules`), also under autocast, as Wan computes them
        with torch.autocast(device_type=x.device.type, enabled=False):
            temb = self.time_embed(timestep.flatten()).float().view(b, -1, cfg.dim)  # (B, L|1, D)
            if motion is not None:
                if self.motion_embed is None:
                    raise ValueError("motion intensities given but model.motion is None")
                temb = temb + self.motion_embed(motion.to(temb.device)).float()[:, None]  # zero for NaN rows
            proj_in = nn.functional.silu(temb).to(self.time_proj.weight.dtype)
            temb_proj = self.time_proj(proj_in).float().unflatten(-1, (6, cfg.dim))  # (B, L|1, 6, D)
        text = self.text_embed(text)  # (B, Lk, D)
        if image is not None:
            if self.image_embed is None:
                raise ValueError("image tokens given but model.image_dim is None")
            image = self.image_embed(image)  # (B, Li, D)
        windows = None
        if audio is not None:
            if self.audio_proj is None:
                raise ValueError("audio given but model.audio is None")
            if audio_index is None or audio_mask is None:
                raise ValueError("audio needs audio_index and audio_mask (see model.audio_windows)")
            windows = gather_windows(self.audio_proj(audio), audio_index)  # (B, F_lat, W, D)
        face = face_valid = None
        if face_reference is not None:
            if self.face_tokens is None:
                raise ValueError("face reference given but model.face_identity is None")
            if face_box is None:
                raise ValueError("face_reference needs face_box (B, 4), NaN rows for samples without a face")
            face_box = face_box.to(x.device)
            face, face_valid = self.face_tokens(face_reference.to(x.device), face_box).to(x.dtype), has_face(face_box)
        phase_keys = None
        if block_ids is not None:
            if frame_phases is None:
                raise ValueError("block_ids need frame_phases (see model.phase_layout)")
            # one key selection for all layers (PACA's mask depends on text layout only)
            phase_keys = PhaseKeys.build(
                block_ids, frame_phases, pad_visible=cfg.phase.pad_visible, compact=cfg.phase.compact_keys
            )
        text_w, audio_w = self.alignment()  # (num_layers,) each

        # 3. Transformer blocks
        for i, block in enumerate(self.blocks):
            x = block(
                x,
                temb_proj,
                rope,
                text,
                text_weight=text_w[i],
                audio_weight=audio_w[i],
                phase_keys=phase_keys,
                image=image,
                audio=windows,
                audio_mask=audio_mask,
                face=face,
                face_valid=face_valid,
            )

        # 4. Output norm, projection & unpatchify
        shift, scale = self.head_modulation(temb.unsqueeze(2)).unbind(2)  # (B, L|1, D) fp32
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)  # (B, L, C_out*pt*ph*pw)
        x = x.reshape(b, gf, gh, gw, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, F, pt, H, ph, W, pw)
        return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)  # (B, C_out, F, H, W)


def _upgrade_modulation_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Load-state-dict pre-hook: `head_modulation` / `blocks.i.modulation` (bare parameters in older
    checkpoints) -> `….table`."""
    for key in list(state_dict):
        rest = key[len(prefix):] if key.startswith(prefix) else None
        if rest is not None and (rest == "head_modulation" or (rest.startswith("blocks.") and rest.endswith(".modulation"))):
            state_dict[key + ".table"] = state_dict.pop(key)


def cast_keeping_fp32(model: VideoDiT, dtype: torch.dtype) -> VideoDiT:
    """Cast the parameters to `dtype` except those of `fp32_modules()` (never rounded: what diffusers
    does with `_keep_in_fp32_modules` when it loads Wan in bf16). Buffers (RoPE, the alignment
    schedule) keep their fp32."""
    kept = {id(p) for name in model.fp32_modules() for p in model.get_submodule(name).parameters()}
    with torch.no_grad():
        for param in model.parameters():
            if id(param) not in kept and param.is_floating_point():
                param.data = param.data.to(dtype)
    return model
