"""Model hyper-parameters: one frozen dataclass per network, and named presets.

"What is the pcam96 model?" has exactly one answer, ``PRESETS["pcam96"]`` below. Every number
docs/method.md marks *assumed* is a field here with that number as its default. Configs validate
themselves on construction, so an impossible model fails before any layer is built, with a
message naming the field.

This module imports no TensorFlow: the CLI and the export assets read configs without it.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional, Tuple

from hvitgan_tf.errors import UserError

NUM_STAGES = 4
UPSAMPLING_MODES = ("bicubic", "pixel_shuffle")


class ConfigError(UserError, ValueError):
    """An impossible combination of hyper-parameters (names the field and the reason)."""


def _require_int(name, value, minimum=1):
    """Raise ConfigError unless ``value`` is an int >= ``minimum`` (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_common(cfg, min_depth=1):
    """Checks shared by both networks' configs (a generator stage may have no blocks)."""
    _require_int("image_size", cfg.image_size)
    _require_int("num_classes", cfg.num_classes, minimum=2)
    _require_int("embed_dim", cfg.embed_dim)
    if (isinstance(cfg.mlp_ratio, bool) or not isinstance(cfg.mlp_ratio, (int, float))
            or not cfg.mlp_ratio > 0 or int(cfg.mlp_ratio * min(cfg.stage_widths)) < 1):
        raise ConfigError(f"mlp_ratio must be > 0 and give an MLP of at least one unit at the "
                          f"narrowest stage, got {cfg.mlp_ratio}")
    if not cfg.layer_norm_epsilon > 0:
        raise ConfigError(f"layer_norm_epsilon must be > 0, got {cfg.layer_norm_epsilon}")
    for k in range(NUM_STAGES):
        _require_int(f"depth[{k}]", cfg.depth[k], minimum=min_depth)
        _require_int(f"num_heads[{k}]", cfg.num_heads[k])
        if cfg.window_size[k] is not None:
            _require_int(f"window_size[{k}]", cfg.window_size[k])


def _as_tuple(value, length, name):
    """Accept a scalar (same value for every stage) or a sequence of ``length`` values."""
    if isinstance(value, (list, tuple)):
        if len(value) != length:
            raise ConfigError(f"{name} needs {length} values (one per stage), got {list(value)}")
        return tuple(value)
    return (value,) * length


@dataclass(frozen=True)
class GeneratorConfig:
    """docs/method.md §2. Token grid ``H0 = image_size / 16``; widths ``C, C, C/4, C/16, C/64``."""

    image_size: int = 96
    num_classes: int = 2
    latent_dim: int = 256
    embed_dim: int = 1024  # C: width of the input tokens and of stage 1
    # Encoder blocks per stage. 0 is allowed: the stage then only upsamples, normalises
    # (conditionally), adds its noise map and paints its RGB.
    depth: Tuple[int, ...] = (4, 4, 4, 4)
    num_heads: Tuple[int, ...] = (4, 4, 4, 1)  # PRESETS["pcam96"] says why stage 4 has one
    # None = global self-attention; an int w = non-overlapping w x w window attention (assumed).
    window_size: Tuple[Optional[int], ...] = (None, None, 12, 16)
    mlp_ratio: float = 4.0
    class_embed_dim: int = 128  # assumed
    class_projection: bool = True  # False: plain LN, the label enters only at the input
    layer_norm_epsilon: float = 1e-6
    # Token width of each stage. None: the paper's C, C/4, C/16, C/64 (each pixel shuffle divides by
    # 4, nothing else). Explicit widths (stage 1 must be C) put a learned projection to 4x the
    # stage's width before a pixel shuffle whose input is not already that wide.
    widths: Optional[Tuple[int, ...]] = None
    # How each stage doubles the token grid: "pixel_shuffle" (the paper's stages 2-4: a token's
    # channels become a 2x2 block) or "bicubic" (interpolate; the paper's stage 1).
    upsampling: Tuple[str, ...] = ("bicubic", "pixel_shuffle", "pixel_shuffle", "pixel_shuffle")
    # Every LayerNorm of the generator (the class projection's and the encoders') first
    # subtracts each image's mean token (not in the paper; docs/method.md §11.10). False: the
    # paper's per-token LayerNorm.
    center_tokens: bool = False
    # Every stage paints its own RGB image (a per-token Dense to 3 channels); the coarser ones
    # are upsampled bicubically and summed with the last stage's before the tanh, as in
    # StyleGAN2's output skips (not in the paper; docs/method.md §11.16). False: only the last
    # stage's tokens become pixels.
    rgb_skips: bool = False
    # After every pixel shuffle, a fixed [1, 2, 1] / 4 filter along each axis of the new token
    # grid (not in the paper; docs/method.md §11.18): it removes the pattern that repeats every
    # two tokens, which a pixel shuffle makes at no cost and which showed through the small
    # preset's samples as a lattice. False: the paper's plain pixel shuffle.
    shuffle_blur: bool = False
    # Per stage, the starting strength of a noise map added to the upsampled tokens (not in
    # the paper; docs/method.md §11.18): a fixed random projection of the stage's noise chunk
    # to one value per token, times a learned per-channel strength that starts at plus and
    # minus this value on alternate channels. It gives the late stages randomness that differs
    # from place to place, where the paper's noise reaches them only through the conditional
    # layer norm, the same scale and shift for every token of an image. 0: none.
    spatial_noise: Tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)

    def __post_init__(self):
        for name in ("depth", "num_heads", "window_size", "upsampling", "spatial_noise"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name), NUM_STAGES, name))
        if self.widths is not None:
            if not isinstance(self.widths, (list, tuple)):
                raise ConfigError(f"widths needs {NUM_STAGES} values (one per stage), got "
                                  f"{self.widths!r}")
            object.__setattr__(self, "widths", _as_tuple(self.widths, NUM_STAGES, "widths"))
        self.validate()

    # -- derived geometry ------------------------------------------------------------------
    @property
    def initial_grid(self) -> int:
        return self.image_size // 16

    @property
    def stage_grids(self) -> Tuple[int, ...]:
        """Token grid side after each stage's upsample: 2H0, 4H0, 8H0, 16H0."""
        return tuple(self.initial_grid * 2 ** (k + 1) for k in range(NUM_STAGES))

    @property
    def stage_widths(self) -> Tuple[int, ...]:
        """Token width in each stage: C, kept by a bicubic stage and divided by 4 by a pixel
        shuffle (the paper's C, C/4, C/16, C/64), unless ``widths`` sets them."""
        if self.widths is not None:
            return tuple(self.widths)
        widths, c = [], self.embed_dim
        for mode in self.upsampling:
            c = c // 4 if mode == "pixel_shuffle" else c
            widths.append(c)
        return tuple(widths)

    @property
    def noise_chunk(self) -> int:
        """Skip-z: the latent is split into one equal chunk per stage."""
        return self.latent_dim // NUM_STAGES

    def validate(self):
        _require_int("image_size", self.image_size)
        if self.image_size % 16:
            raise ConfigError(
                f"image_size must be a positive multiple of 16 (four x2 upsamplings), "
                f"got {self.image_size}"
            )
        _require_int("embed_dim", self.embed_dim)
        for k, mode in enumerate(self.upsampling):
            if mode not in UPSAMPLING_MODES:
                raise ConfigError(f"upsampling[{k}] must be one of {', '.join(UPSAMPLING_MODES)}"
                                  f", got {mode!r}")
        shuffles = sum(mode == "pixel_shuffle" for mode in self.upsampling)
        if self.widths is not None:
            for k, width in enumerate(self.widths):
                _require_int(f"widths[{k}]", width)
            if self.widths[0] != self.embed_dim:
                raise ConfigError(f"widths[0] must equal embed_dim={self.embed_dim} (stage 1 "
                                  f"upsamples bicubically and keeps the width), got "
                                  f"{self.widths[0]}")
        elif self.embed_dim % 4 ** shuffles:
            raise ConfigError(
                f"embed_dim must be divisible by {4 ** shuffles} (each of the {shuffles} pixel "
                f"shuffles divides the width by 4: "
                f"{' -> '.join(f'{self.embed_dim / 4 ** i:g}' for i in range(shuffles + 1))}), "
                f"got {self.embed_dim}"
            )
        _check_common(self, min_depth=0)
        _require_int("latent_dim", self.latent_dim)
        if self.latent_dim % NUM_STAGES:
            raise ConfigError(
                f"latent_dim must be a positive multiple of {NUM_STAGES} (one noise chunk per "
                f"stage), got {self.latent_dim}"
            )
        _require_int("class_embed_dim", self.class_embed_dim)
        for k, scale in enumerate(self.spatial_noise):
            if (isinstance(scale, bool) or not isinstance(scale, (int, float))
                    or not 0 <= scale < float("inf")):
                raise ConfigError(f"spatial_noise[{k}] must be a finite number >= 0, got "
                                  f"{scale!r}")
        for name in ("class_projection", "center_tokens", "rgb_skips", "shuffle_blur"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got "
                                  f"{getattr(self, name)!r}")
        for k, (width, heads, window, grid) in enumerate(
            zip(self.stage_widths, self.num_heads, self.window_size, self.stage_grids), start=1
        ):
            if width % heads:
                raise ConfigError(
                    f"num_heads[{k - 1}]={heads} must divide the stage-{k} width {width}"
                )
            if window is not None and grid % window:
                raise ConfigError(
                    f"window_size[{k - 1}]={window} must divide the stage-{k} token grid "
                    f"{grid}x{grid}"
                )


@dataclass(frozen=True)
class DiscriminatorConfig:
    """docs/method.md §3. Patch sizes ``p, 2p, 4p``; widths grow ``D/2 -> 3D/4 -> D`` across stages
    1-3."""

    image_size: int = 96
    num_classes: int = 2
    patch_size: int = 4  # p (assumed)
    embed_dim: int = 384  # D (assumed)
    # Width of each scale's patch embedding (assumed D/2, D/4, D/4); they must sum to D.
    scale_widths: Optional[Tuple[int, int, int]] = None
    depth: Tuple[int, ...] = (1, 1, 1, 2)  # stages 1-3 one encoder each, stage 4 two
    num_heads: Tuple[int, ...] = (4, 4, 4, 4)
    window_size: Tuple[Optional[int], ...] = (None, None, None, None)
    mlp_ratio: float = 4.0
    layer_norm_epsilon: float = 1e-6
    # Minibatch standard deviation (not in the paper; docs/method.md §11): the critic score
    # also reads how much the source features vary within groups of this many images, so a
    # generator that makes one image for every noise scores lower. 0 = off (the paper).
    minibatch_std_group: int = 0

    def __post_init__(self):
        for name in ("depth", "num_heads", "window_size"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name), NUM_STAGES, name))
        _require_int("embed_dim", self.embed_dim)
        if self.scale_widths is None:
            d = self.embed_dim
            object.__setattr__(self, "scale_widths", (d // 2, d // 4, d // 4))
        else:
            object.__setattr__(self, "scale_widths", _as_tuple(self.scale_widths, 3,
                                                               "scale_widths"))
        self.validate()

    @property
    def stage_grids(self) -> Tuple[int, ...]:
        """Token grid side seen by the encoders of stages 1-4 (stage 4 before its 2 tokens)."""
        g = self.image_size // self.patch_size
        return (g, g // 2, g // 4, g // 8)

    @property
    def stage_widths(self) -> Tuple[int, ...]:
        a, b, c = self.scale_widths
        return (a, a + b, a + b + c, a + b + c)

    def validate(self):
        _require_int("patch_size", self.patch_size)
        _require_int("minibatch_std_group", self.minibatch_std_group, minimum=0)
        if self.minibatch_std_group == 1:
            raise ConfigError("minibatch_std_group must be 0 (off) or at least 2: a group of "
                              "one image has no spread")
        if (any(isinstance(w, bool) or not isinstance(w, int) for w in self.scale_widths)
                or sum(self.scale_widths) != self.embed_dim or min(self.scale_widths) < 1):
            raise ConfigError(
                f"scale_widths {list(self.scale_widths)} must be positive integers summing to "
                f"embed_dim={self.embed_dim} (default: embed_dim/2, /4, /4, so embed_dim must "
                f"then be a multiple of 4)"
            )
        _check_common(self)
        # Three 2x2 poolings after the p-patch grid: the image must split into 8p tiles.
        if self.image_size % (8 * self.patch_size):
            raise ConfigError(
                f"image_size {self.image_size} must be a multiple of 8 * patch_size = "
                f"{8 * self.patch_size} (patches of p, 2p, 4p and three 2x2 poolings)"
            )
        for k, (width, heads, window, grid) in enumerate(
            zip(self.stage_widths, self.num_heads, self.window_size, self.stage_grids), start=1
        ):
            if width % heads:
                raise ConfigError(
                    f"num_heads[{k - 1}]={heads} must divide the stage-{k} width {width}"
                )
            if window is not None:
                if k == NUM_STAGES:
                    raise ConfigError("window_size[3] must be None: stage 4 attends globally "
                                      "over the class and source tokens")
                if grid % window:
                    raise ConfigError(
                        f"window_size[{k - 1}]={window} must divide the stage-{k} token grid "
                        f"{grid}x{grid}"
                    )


@dataclass(frozen=True)
class ModelConfig:
    """Both networks of one model. ``image_size``/``num_classes`` are kept equal in G and D."""

    preset: str
    generator: GeneratorConfig
    discriminator: DiscriminatorConfig

    def __post_init__(self):
        g, d = self.generator, self.discriminator
        if (g.image_size, g.num_classes) != (d.image_size, d.num_classes):
            raise ConfigError(
                f"generator and discriminator disagree: image_size {g.image_size} vs "
                f"{d.image_size}, num_classes {g.num_classes} vs {d.num_classes}"
            )

    @property
    def image_size(self) -> int:
        return self.generator.image_size

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def replace(self, **generator_and_shared) -> "ModelConfig":
        """Copy with changes. ``image_size``/``num_classes`` go to both networks; other keys
        to the generator unless prefixed ``d_`` (e.g. ``d_embed_dim=256``)."""
        shared = {k: generator_and_shared.pop(k) for k in ("image_size", "num_classes")
                  if k in generator_and_shared}
        d_changes = {k[2:]: generator_and_shared.pop(k) for k in list(generator_and_shared)
                     if k.startswith("d_")}
        if "embed_dim" in d_changes and "scale_widths" not in d_changes:
            d_changes["scale_widths"] = None  # re-derive D/2, D/4, D/4 for the new width
        return ModelConfig(
            preset=self.preset,
            generator=dataclasses.replace(self.generator, **shared, **generator_and_shared),
            discriminator=dataclasses.replace(self.discriminator, **shared, **d_changes),
        )

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "generator": dataclasses.asdict(self.generator),
            "discriminator": dataclasses.asdict(self.discriminator),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        try:
            return cls(
                preset=data["preset"],
                generator=GeneratorConfig(**data["generator"]),
                discriminator=DiscriminatorConfig(**data["discriminator"]),
            )
        except (KeyError, TypeError) as error:
            raise ConfigError(f"not a valid hvitgan model config: {error}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))


# One row per preset: the image size both networks share, and the generator's and the
# discriminator's fields as keyword arguments of their configs. Every row names the same fields,
# so the presets can be read against each other. ``num_classes`` belongs to the data, not the
# preset: ``preset()`` adds it when it builds the configs.
PRESETS = {
    # docs/method.md §2/§3 "assumed, TransGAN-sized": the paper's model at PCam's 96 px.
    "pcam96": {
        "image_size": 96,
        "generator": dict(
            latent_dim=256, embed_dim=1024, depth=(4, 4, 4, 4), class_embed_dim=128,
            # Heads: 4, "fewer where the width is too small" (docs/method.md §2), read as "keep
            # heads at least 16 channels wide". Stage 4 is 16 channels wide, so it gets one head:
            # four 4-channel heads quadruple the 9216 x 256 attention maps per image, and measured
            # 3.4x slower per stage-4 block (forward + backward, CPU) for a model whose other
            # stages all use 16+ channel heads.
            num_heads=(4, 4, 4, 1), window_size=(None, None, 12, 16),
        ),
        "discriminator": dict(
            patch_size=4, embed_dim=384, depth=(1, 1, 1, 2), num_heads=(4, 4, 4, 4),
            minibatch_std_group=0,
        ),
    },
    # The CPU demo model: 32 px, trains visibly on the demo patches in minutes on 2 cores.
    # Six departures from scaling pcam96 down (docs/method.md §11.10-11.12, §11.16, §11.18):
    # token centring; generator widths 256, 128, 64, 32 instead of 256, 64, 16, 4 (a 4-channel
    # last stage painted 4-pixel sprites); output skips (without them the demo's samples were
    # 8-pixel squares of stain); a blur after each pixel shuffle (without it a 4-pixel lattice
    # covered the demo's samples) and noise maps in stages 2-4 (with the blur alone every
    # sample had one motif); discriminator patches of 4 pixels and width 256 (its class head
    # alone: 0.85 validation accuracy on glyphs after 600 steps, 0.49 with 2 / 128). Generator
    # stage 3 attending globally and stage 4 without a block are choices of the preset, like the
    # discriminator's size.
    "small": {
        "image_size": 32,
        "generator": dict(
            latent_dim=128, embed_dim=256, depth=(2, 2, 1, 0), class_embed_dim=64,
            # Heads stay at least 16 channels wide, as in pcam96. Stage 3 (16 x 16 tokens)
            # attends globally: windows of 8 left a cross at 16 pixels in the demo's samples,
            # and its 256 tokens are cheap (+7 % generator FLOPs). Stage 4 (32 x 32 tokens)
            # has no block: its windows of 8 cut the demo's samples into 8-pixel squares from
            # about 1,650 iterations on; global attention there removed them at 1.13x the time
            # per iteration; without a block they are gone too, the FID at 1,100 iterations
            # was the lowest of the three, and an iteration costs what it did with the
            # windows (docs/method.md §11.20).
            num_heads=(4, 4, 1, 1), window_size=(None, None, None, None),
            widths=(256, 128, 64, 32), center_tokens=True, rgb_skips=True,
            shuffle_blur=True, spatial_noise=(0.0, 0.3, 0.3, 0.3),
        ),
        "discriminator": dict(
            patch_size=4, embed_dim=256, depth=(1, 1, 1, 2), num_heads=(2, 2, 4, 4),
            minibatch_std_group=4,
        ),
    },
    # For tests only: 16 px, one block per stage, a few hundred thousand weights.
    "tiny": {
        "image_size": 16,
        "generator": dict(
            latent_dim=16, embed_dim=128, depth=(1, 1, 1, 1), class_embed_dim=8,
            num_heads=(2, 2, 1, 1), window_size=(None, None, 4, 4),
        ),
        "discriminator": dict(
            patch_size=2, embed_dim=32, depth=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
            minibatch_std_group=0,
        ),
    },
}


#: Generator fields a preset sets differently for one data source (the source's spec, as given
#: to ``--data``). The smoothing of docs/method.md §11.18 and the block-less stage 4 of §11.20
#: are for tissue; the `glyphs` digits are thin strokes, and with the smoothing `small` drew them
#: less legibly and with less variety (judge 0.79 against 0.92, diversity 0.61 against 0.75
#: after 2,196 iterations), so on `glyphs` `small` keeps its generator of before §11.18.
PRESET_DATA_CHANGES = {
    "small": {
        "glyphs": dict(depth=(2, 2, 1, 1), window_size=(None, None, 8, 8), shuffle_blur=False,
                       spatial_noise=(0.0, 0.0, 0.0, 0.0)),
    },
}


def preset(name: str, num_classes: int = 2, data: Optional[str] = None) -> ModelConfig:
    """The named preset's config for ``num_classes`` classes, and for the data source spec
    ``data`` when the preset sets some fields differently for it (``PRESET_DATA_CHANGES``)."""
    try:
        row = PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None
    shared = {"image_size": row["image_size"], "num_classes": num_classes}
    changes = PRESET_DATA_CHANGES.get(name, {}).get(str(data).strip(), {})
    return ModelConfig(
        preset=name,
        generator=GeneratorConfig(**shared, **{**row["generator"], **changes}),
        discriminator=DiscriminatorConfig(**shared, **row["discriminator"]),
    )
