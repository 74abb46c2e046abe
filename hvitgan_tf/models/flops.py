"""Analytic FLOPs of one forward pass of each network, read from the config alone (docs/method.md
§2, §3).

What is counted: every matrix product, at 2 FLOPs per multiply-add -- the token projections
(patch and input embeddings, q/k/v, attention output, both MLP layers, the conditional layer
norm's gamma/beta projections, ``to_rgb`` and, with ``rgb_skips``, every stage's own RGB
projection, with ``spatial_noise`` the projection of each stage's noise chunk to its noise
map, and the heads), the two attention products (``q k^T`` and ``softmax(.) v``) and
the bicubic upsamplings (of tokens, and of the output skips' images), two matmuls each.

What is left out (all elementwise, memory-bound, and together a few percent of the arithmetic
at every preset): layer norms, softmax, GELU, residual and bias additions, position
embeddings, pixel shuffle and its blur, pooling, DiffAugment, losses, optimiser and EMA updates.

The split into ``weights`` (products with a weight matrix) and ``attention`` (products of two
activations) matters for the training iteration: the two kinds cost different multiples of the
forward pass under backpropagation and under the gradient penalty's double backward
(``hvitgan_tf.training.gan.iteration_flops``).

No TensorFlow import: the CLI and the benchmarks read these numbers without building a model.
"""
from __future__ import annotations

from dataclasses import dataclass

from hvitgan_tf.models.config import NUM_STAGES, DiscriminatorConfig, GeneratorConfig


@dataclass(frozen=True)
class ForwardFlops:
    """FLOPs of one image's forward pass: products with weights, and activation products."""

    weights: int
    attention: int

    @property
    def total(self) -> int:
        return self.weights + self.attention

    def __add__(self, other: "ForwardFlops") -> "ForwardFlops":
        return ForwardFlops(self.weights + other.weights, self.attention + other.attention)

    def __mul__(self, factor: int) -> "ForwardFlops":
        return ForwardFlops(self.weights * factor, self.attention * factor)

    __rmul__ = __mul__


def dense(rows: int, inputs: int, outputs: int) -> ForwardFlops:
    """``[rows, inputs] @ [inputs, outputs]``."""
    return ForwardFlops(2 * rows * inputs * outputs, 0)


def encoder_block(tokens: int, width: int, mlp_ratio: float, window_tokens: int) -> ForwardFlops:
    """One pre-norm encoder block over ``tokens`` tokens of ``width`` channels, attending
    within groups of ``window_tokens`` tokens (all of them for global attention).

    Heads do not change the count: ``h`` heads of ``width / h`` channels do the work of one
    head of ``width`` channels.
    """
    hidden = max(1, int(width * mlp_ratio))
    projections = (dense(tokens, width, 3 * width) + dense(tokens, width, width)
                   + dense(tokens, width, hidden) + dense(tokens, hidden, width))
    # q k^T and weights @ v: each token meets window_tokens others over `width` channels.
    return projections + ForwardFlops(0, 2 * 2 * tokens * window_tokens * width)


def generator_forward(cfg: GeneratorConfig) -> ForwardFlops:
    """One image through the generator (docs/method.md §2)."""
    h0, c = cfg.initial_grid, cfg.embed_dim
    total = dense(1, cfg.latent_dim + cfg.num_classes, h0 * h0 * c)  # input projection
    condition = cfg.noise_chunk + cfg.class_embed_dim
    width_in, grid_in = c, h0
    for k in range(NUM_STAGES):
        if cfg.class_projection:  # CLN: W_gamma e and W_beta e, once per image
            total += 2 * dense(1, condition, width_in)
        grid, width = cfg.stage_grids[k], cfg.stage_widths[k]
        shuffle = cfg.upsampling[k] == "pixel_shuffle"
        expanded = width_in  # the width the upsampler reads
        if width != (width_in // 4 if shuffle else width_in):
            expanded = 4 * width if shuffle else width  # GeneratorStage.expand, a Dense
            total += dense(grid_in * grid_in, width_in, expanded)
        if not shuffle:  # bicubic x2 as A X then A X again, A [2g, g]: 12 g^3 C
            total += ForwardFlops(12 * grid_in ** 3 * expanded, 0)
        tokens = grid * grid
        if cfg.spatial_noise[k]:  # the stage's noise chunk projected to one value per token
            total += dense(1, cfg.noise_chunk, tokens)
        window = tokens if cfg.window_size[k] is None else cfg.window_size[k] ** 2
        total += cfg.depth[k] * encoder_block(tokens, width, cfg.mlp_ratio, window)
        if cfg.rgb_skips and k < NUM_STAGES - 1:
            # This stage's own RGB, and the x2 bicubic resize of the 3-channel running image
            # from its grid to the next stage's.
            total += dense(tokens, width, 3) + ForwardFlops(12 * grid ** 3 * 3, 0)
        width_in, grid_in = width, grid
    return total + dense(cfg.image_size ** 2, width_in, 3)  # to_rgb


def discriminator_forward(cfg: DiscriminatorConfig) -> ForwardFlops:
    """One image through the discriminator (docs/method.md §3), both heads included."""
    size, p = cfg.image_size, cfg.patch_size
    total = ForwardFlops(0, 0)
    for k, width in enumerate(cfg.scale_widths):  # patches of p, 2p, 4p, each embedded
        patch = p * 2 ** k
        total += dense((size // patch) ** 2, patch * patch * 3, width)
    for k in range(NUM_STAGES):
        tokens = cfg.stage_grids[k] ** 2 + (2 if k == NUM_STAGES - 1 else 0)
        window = tokens if cfg.window_size[k] is None else cfg.window_size[k] ** 2
        total += cfg.depth[k] * encoder_block(tokens, cfg.stage_widths[k], cfg.mlp_ratio, window)
    return total + dense(1, cfg.embed_dim, cfg.num_classes) + dense(1, cfg.embed_dim, 1)
