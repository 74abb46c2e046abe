"""Model configs: presets, derived geometry, serialisation, and invalid values naming the field."""
import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest

from hvitgan_tf.models.config import (
    PRESETS,
    ConfigError,
    DiscriminatorConfig,
    GeneratorConfig,
    ModelConfig,
    preset,
)


def test_pcam96_geometry_matches_spec():
    cfg = preset("pcam96")
    g, d = cfg.generator, cfg.discriminator
    assert g.initial_grid == 6
    assert g.stage_grids == (12, 24, 48, 96)
    assert g.stage_widths == (1024, 256, 64, 16)
    assert g.window_size == (None, None, 12, 16)
    assert g.noise_chunk == 64 and g.class_embed_dim == 128
    assert d.scale_widths == (192, 96, 96)
    assert d.stage_grids == (24, 12, 6, 3)
    assert d.stage_widths == (192, 288, 384, 384)
    # The dataclass defaults are the pcam96 numbers (one answer to "what is the model?").
    assert dataclasses.replace(g, num_classes=2) == GeneratorConfig()
    assert dataclasses.replace(d, num_classes=2) == DiscriminatorConfig()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = preset(name, num_classes=5)
    assert cfg.num_classes == 5 and cfg.preset == name
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_presets_keep_their_numbers():
    # preset_configs.json holds every preset as it was serialised when it was last changed on
    # purpose, for two class counts; a refactor of the preset table must leave all of it equal.
    # After a deliberate change of a preset, write the file again from preset(name, k).to_dict().
    pinned = json.loads((pathlib.Path(__file__).parent / "preset_configs.json").read_text())
    assert sorted(pinned) == sorted(PRESETS)
    for name, by_classes in pinned.items():
        for num_classes, expected in by_classes.items():
            cfg = preset(name, int(num_classes))
            assert json.loads(json.dumps(cfg.to_dict())) == expected, (name, num_classes)
            assert ModelConfig.from_dict(expected) == cfg, (name, num_classes)


def test_replace_sends_shared_fields_to_both_networks():
    cfg = preset("tiny").replace(num_classes=4, class_projection=False, d_embed_dim=64)
    assert cfg.generator.num_classes == cfg.discriminator.num_classes == 4
    assert cfg.generator.class_projection is False
    assert cfg.discriminator.embed_dim == 64 and cfg.discriminator.scale_widths == (32, 16, 16)


@pytest.mark.parametrize("factory, changes, field", [
    (GeneratorConfig, {"image_size": 40}, "image_size"),
    (GeneratorConfig, {"image_size": 0}, "image_size"),
    (GeneratorConfig, {"embed_dim": 96}, "embed_dim"),  # 96 / 4 / 4 is not divisible by 4
    (GeneratorConfig, {"num_heads": (3, 4, 4, 1)}, "num_heads[0]"),
    (GeneratorConfig, {"num_heads": (4, 4, 4, 32)}, "num_heads[3]"),  # stage-4 width is 16
    (GeneratorConfig, {"window_size": (None, None, 10, 16)}, "window_size[2]"),
    (GeneratorConfig, {"window_size": (None, None, 12, 0)}, "window_size[3]"),
    (GeneratorConfig, {"latent_dim": 30}, "latent_dim"),
    (GeneratorConfig, {"depth": (4, -1, 4, 4)}, "depth[1]"),
    (GeneratorConfig, {"depth": (4, 4, 4)}, "depth"),
    (GeneratorConfig, {"class_projection": "no"}, "class_projection"),
    (GeneratorConfig, {"num_classes": 1}, "num_classes"),
    (GeneratorConfig, {"class_embed_dim": 0}, "class_embed_dim"),
    (GeneratorConfig, {"mlp_ratio": 0.0}, "mlp_ratio"),
    (GeneratorConfig, {"layer_norm_epsilon": 0.0}, "layer_norm_epsilon"),
    (DiscriminatorConfig, {"image_size": 100}, "image_size"),
    (DiscriminatorConfig, {"patch_size": 0}, "patch_size"),
    (DiscriminatorConfig, {"num_heads": (5, 4, 4, 4)}, "num_heads[0]"),
    (DiscriminatorConfig, {"num_heads": (4, 4, 4, 7)}, "num_heads[3]"),
    (DiscriminatorConfig, {"window_size": (5, None, None, None)}, "window_size[0]"),
    (DiscriminatorConfig, {"window_size": (None, None, None, 3)}, "window_size[3]"),
    (DiscriminatorConfig, {"scale_widths": (100, 100, 100)}, "scale_widths"),
    (DiscriminatorConfig, {"embed_dim": 390}, "scale_widths"),  # 390 / 4 is not an integer
    (DiscriminatorConfig, {"depth": 0}, "depth[0]"),
])
def test_invalid_configs_name_the_field(factory, changes, field):
    with pytest.raises(ConfigError) as error:
        factory(**changes)
    assert field in str(error.value)


def test_a_generator_stage_may_have_no_blocks_but_a_discriminator_stage_may_not():
    assert GeneratorConfig(depth=(4, 4, 4, 0)).depth == (4, 4, 4, 0)
    with pytest.raises(ConfigError, match=r"depth\[3\] must be an integer >= 1"):
        DiscriminatorConfig(depth=(1, 1, 1, 0))


def test_mismatched_networks_are_rejected():
    with pytest.raises(ConfigError, match="image_size"):
        ModelConfig("custom", GeneratorConfig(image_size=32, embed_dim=256, window_size=None),
                    DiscriminatorConfig(image_size=64))


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="pcam96"):
        preset("huge")


def test_config_and_package_import_without_tensorflow():
    # The CLI's --help and the export assets read configs; TensorFlow takes seconds to import.
    code = ("import sys; import hvitgan_tf.models, hvitgan_tf.cli.model_cmd; "
            "from hvitgan_tf.models import preset, ModelConfig; preset('pcam96'); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_small_keeps_its_earlier_generator_on_glyphs():
    """docs/method.md §11.18, §11.20: the tissue smoothing and the block-less stage 4 are off
    for the glyphs data, so `small` on glyphs is the model the glyphs learning benchmark in
    benchmarks/results measured."""
    small = preset("small", 10)
    glyphs = preset("small", 10, data="glyphs")
    assert small.generator.shuffle_blur and any(small.generator.spatial_noise)
    assert small.generator.depth == (2, 2, 1, 0)  # no stage-4 block on tissue (§11.20)
    assert glyphs.generator == dataclasses.replace(
        small.generator, depth=(2, 2, 1, 1), window_size=(None, None, 8, 8), shuffle_blur=False,
        spatial_noise=(0.0, 0.0, 0.0, 0.0))
    assert glyphs.discriminator == small.discriminator
    assert preset("small", 10, data=" glyphs ") == glyphs
    assert preset("small", 10, data="demo") == small == preset("small", 10, data="folder:x")
    assert preset("tiny", 10, data="glyphs") == preset("tiny", 10)
    measured = json.loads((pathlib.Path(__file__).parents[2] / "benchmarks" / "results"
                           / "learning-glyphs" / "learning.json").read_text())["model"]
    assert ModelConfig.from_dict(measured) == glyphs
