"""Per-stage description of both networks: token grids, widths, attention, parameter counts.

Backs ``hvitgan-tf model summary``. The numbers are read from built networks (parameter counts
from the weights that exist), not recomputed by hand, so they cannot drift from the code.
"""
from hvitgan_tf.models.config import NUM_STAGES, ModelConfig
from hvitgan_tf.models.discriminator import build_discriminator
from hvitgan_tf.models.generator import build_generator


def _attention(window_size, blocks=1):
    if not blocks:
        return "none"
    return "global" if window_size is None else f"window {window_size}x{window_size}"


def _params(*layers):
    return int(sum(layer.count_params() for layer in layers if layer is not None))


def describe_generator(generator):
    """Rows ``{part, grid, width, upsample, attention, blocks, parameters}`` for a built
    :class:`~hvitgan_tf.models.generator.Generator`, plus the totals."""
    cfg = generator.config
    h0 = cfg.initial_grid
    rows = [{
        "part": "input", "grid": f"{h0}x{h0}", "width": cfg.embed_dim, "upsample": "-",
        "attention": "-", "blocks": 0,
        "parameters": _params(generator.input_projection, generator.input_position_embedding,
                              generator.class_embedding),
    }]
    for k, stage in enumerate(generator.stages):
        g = cfg.stage_grids[k]
        rows.append({
            "part": f"stage {k + 1}", "grid": f"{g}x{g}", "width": cfg.stage_widths[k],
            "upsample": stage.upsample_mode.replace("_", " "),
            "attention": _attention(cfg.window_size[k], cfg.depth[k]), "blocks": cfg.depth[k],
            "parameters": _params(stage),
        })
    size = cfg.image_size
    # With output skips the row also holds each stage's own RGB projection (the bicubic
    # resizes between them have no weights).
    rows.append({"part": "output", "grid": f"{size}x{size}", "width": 3,
                 "upsample": "bicubic skips" if cfg.rgb_skips else "-",
                 "attention": "-", "blocks": 0,
                 "parameters": _params(generator.to_rgb, *generator.skip_rgb)})
    return {
        "rows": rows,
        "resolutions": [h0, *cfg.stage_grids],
        "widths": [cfg.embed_dim, *cfg.stage_widths],
        "parameters": int(generator.count_params()),
    }


def describe_discriminator(discriminator):
    """Rows for a built :class:`~hvitgan_tf.models.discriminator.Discriminator`, plus totals."""
    cfg = discriminator.config
    embedding = discriminator.patch_embedding
    scale_grids = [cfg.image_size // p for p in embedding.patch_sizes]
    rows = [{
        "part": "patch embedding",
        "grid": " / ".join(f"{g}x{g}" for g in scale_grids),
        "width": " / ".join(str(w) for w in cfg.scale_widths),
        "upsample": "patches " + " / ".join(f"{p}px" for p in embedding.patch_sizes),
        "attention": "-", "blocks": 0, "parameters": _params(embedding),
    }]
    for k, stage in enumerate(discriminator.stages):
        g = cfg.stage_grids[k]
        last = k == NUM_STAGES - 1
        extra = [discriminator.class_and_source_tokens, discriminator.final_norm] if last else []
        rows.append({
            "part": f"stage {k + 1}",
            "grid": f"2+{g}x{g}" if last else f"{g}x{g}",
            "width": cfg.stage_widths[k],
            "upsample": "+ class, source tokens" if last else "then 2x2 avg pool",
            "attention": _attention(cfg.window_size[k], cfg.depth[k]), "blocks": cfg.depth[k],
            "parameters": _params(stage, *extra),
        })
    rows.append({"part": "heads", "grid": "2 tokens", "width": f"{cfg.num_classes} + 1",
                 "upsample": "-", "attention": "-", "blocks": 0,
                 "parameters": _params(discriminator.class_head, discriminator.source_head)})
    return {
        "rows": rows,
        "resolutions": list(cfg.stage_grids),
        "widths": list(cfg.stage_widths),
        "parameters": int(discriminator.count_params()),
    }


def describe_model(config: ModelConfig):
    """Build both networks of ``config`` and describe them (a JSON-serialisable dict)."""
    generator = build_generator(config.generator)
    discriminator = build_discriminator(config.discriminator)
    g = describe_generator(generator)
    d = describe_discriminator(discriminator)
    return {
        "preset": config.preset,
        "image_size": config.image_size,
        "num_classes": config.num_classes,
        "generator": g,
        "discriminator": d,
        "total_parameters": g["parameters"] + d["parameters"],
    }


_COLUMNS = (("part", "part"), ("grid", "tokens"), ("width", "width"), ("upsample", "resample"),
            ("attention", "attention"), ("blocks", "blocks"), ("parameters", "parameters"))


def _table(rows):
    cells = [[header for _, header in _COLUMNS]]
    for row in rows:
        cells.append([
            f"{row[key]:,}" if key == "parameters" else
            ("-" if key == "blocks" and not row[key] else str(row[key]))
            for key, _ in _COLUMNS
        ])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    out = []
    for line in cells:
        padded = [cell.rjust(w) if i == len(widths) - 1 else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(line, widths))]
        out.append("  " + "  ".join(padded))
    return out


def format_description(description):
    """The text ``hvitgan-tf model summary`` prints."""
    g, d = description["generator"], description["discriminator"]
    arrow = " -> "
    lines = [
        f"Model preset {description['preset']!r}: {description['image_size']}x"
        f"{description['image_size']} RGB, {description['num_classes']} classes",
        "",
        f"Generator: {g['parameters']:,} parameters",
        *_table(g["rows"]),
        f"  resolution {arrow.join(map(str, g['resolutions']))}",
        f"  width      {arrow.join(map(str, g['widths']))}",
        "",
        f"Discriminator: {d['parameters']:,} parameters",
        *_table(d["rows"]),
        f"  resolution {arrow.join(map(str, d['resolutions']))}",
        f"  width      {arrow.join(map(str, d['widths']))}",
        "",
        f"Total: {description['total_parameters']:,} parameters "
        f"(generator {g['parameters']:,} + discriminator {d['parameters']:,})",
    ]
    return "\n".join(lines)
