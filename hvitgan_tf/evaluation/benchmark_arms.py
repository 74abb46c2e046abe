"""What the augmentation benchmark compares (docs/method.md §9): the classifiers, the training
sets ("arms") and the one training recipe, with their defaults. No TensorFlow here, so the CLI
shows these defaults without loading it; ``benchmark`` runs them.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, List, Optional, Sequence

from hvitgan_tf.errors import UserError
from hvitgan_tf.sampling.plan import DEFAULT_THRESHOLD

DEFAULT_MODELS = ("resnet34", "resnet50_cbam", "densenet169", "hvitgan_head")
#: Models built by ``classifiers._resnet``: the only ones that take width_multiplier /
#: small_input (DenseNet169 is Keras's fixed network, hvitgan_head the GAN's discriminator).
SCALABLE_MODELS = ("resnet34", "resnet50_cbam")
#: Models with ImageNet weights Keras publishes (``--pretrained``).
PRETRAINABLE_MODELS = ("densenet169",)
MODEL_TITLES = {"resnet34": "ResNet34", "resnet50_cbam": "ResNet50-CBAM",
                "densenet169": "DenseNet169", "hvitgan_head": "own class head"}
#: ``--ablations`` names -> (class projection on, selection on) of the synthetic set.
ABLATIONS = {"no-sa": (True, False), "no-cp": (False, True), "no-cp-no-sa": (False, False)}

Log = Callable[[str], None]


# -- models and recipe ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Recipe:
    """How every classifier is trained (identical for all models and arms)."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    augment: bool = True  # random rot90 + flip (the dihedral group)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError(f"epochs and batch size must be >= 1, got {self.epochs} and "
                            f"{self.batch_size}")
        if not self.learning_rate > 0:
            raise UserError(f"the learning rate must be > 0, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class ClassifierOptions:
    """Options passed to ``build_classifier`` where a model accepts them."""

    width_multiplier: float = 1.0
    small_input: bool = False
    pretrained: bool = False
    weights_path: Optional[str] = None  # DenseNet169's ImageNet file (else Keras's cache)

    def for_model(self, name: str) -> dict:
        kwargs = {}
        if name in SCALABLE_MODELS:
            kwargs.update(width_multiplier=self.width_multiplier, small_input=self.small_input)
        if self.pretrained and name != "hvitgan_head":
            kwargs.update(pretrained=True, weights_path=self.weights_path)
        return kwargs


def aug_title(class_projection: bool, selection: bool) -> str:
    """Row suffix of a synthetic arm, in the paper's notation."""
    if class_projection and selection:
        return "+ Aug (CP+SA)"
    if class_projection:
        return "+ Aug (CP, no SA)"
    if selection:
        return "+ Aug (SA, no CP)"
    return "+ Aug (no CP, no SA)"


def _aug_key(class_projection: bool, selection: bool) -> str:
    return {(True, True): "cp_sa", (True, False): "cp", (False, True): "sa",
            (False, False): "plain"}[(class_projection, selection)]


@dataclasses.dataclass(frozen=True)
class SyntheticPlan:
    """A synthetic set to generate with ``hvitgan_tf.sampling.sample``."""

    model_dir: str
    per_class: int
    threshold: float
    truncation: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One training set: real only (``synthetic_dir`` None) or real + a synthetic folder."""

    key: str
    title: str  # "" for real only; appended to the model title
    synthetic_dir: Optional[str] = None
    plan: Optional[SyntheticPlan] = None  # how the folder is generated, if we generate it

    @property
    def is_real(self) -> bool:
        return self.synthetic_dir is None

    def describe(self) -> dict:
        return {"key": self.key, "title": self.title or "real only",
                "synthetic_dir": self.synthetic_dir,
                "plan": self.plan.to_dict() if self.plan else None}


REAL = Arm("real", "")


def plan_arms(out_dir: str, *, synthetic_dir: Optional[str] = None,
              model_dir: Optional[str] = None, model_no_cp: Optional[str] = None,
              threshold: float = DEFAULT_THRESHOLD, truncation: float = 1.0, per_class: int = 0,
              seed: int = 0, ablations: Sequence[str] = ()) -> List[Arm]:
    """The arms of a benchmark: real only, the main synthetic arm and the ablation arms.

    ``synthetic_dir`` (an existing sample folder) or ``model_dir`` (an exported GAN, sampled
    into ``OUT/synthetic/<arm>/``) give the main arm; ablations need ``model_dir``, and the
    ones without class projection need ``model_no_cp`` (a second GAN trained with
    ``--no-class-projection``).
    """
    from hvitgan_tf.exported_model import resolve_model_dir

    if synthetic_dir and model_dir:
        raise UserError("give either --synthetic (an existing sample folder) or --model (an "
                        "exported GAN to sample from), not both")
    if not 0.0 <= threshold < 1.0:
        raise UserError(f"--threshold must be in [0, 1), got {threshold}")
    unknown = [a for a in ablations if a not in ABLATIONS]
    if unknown:
        raise UserError(f"unknown ablation(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(ABLATIONS)} (or 'all')")
    arms = [REAL]
    if synthetic_dir:
        if ablations:
            raise UserError("--ablations generate their synthetic sets from --model (and "
                            "--model-no-cp); they cannot be made from a --synthetic folder")
        if not os.path.isdir(synthetic_dir):
            raise UserError(f"--synthetic {synthetic_dir} is not a folder")
        arms.append(Arm("synthetic", "+ Aug", os.path.abspath(synthetic_dir)))
        return arms
    if not model_dir:
        if ablations:
            raise UserError("--ablations need --model (the exported GAN to sample from)")
        return arms
    if per_class < 1:
        raise UserError(f"the synthetic images per class must be >= 1, got {per_class}")
    model_dir = resolve_model_dir(model_dir)
    main_cp = _class_projection(model_dir)
    no_cp_dir = None
    if model_no_cp:
        no_cp_dir = resolve_model_dir(model_no_cp)
        if _class_projection(no_cp_dir):
            raise UserError(f"--model-no-cp {no_cp_dir} was trained with class projection; "
                            "train it with 'hvitgan-tf train --no-class-projection'")
    wanted = [(main_cp, threshold > 0)]
    for name in ablations:
        cp, sa = ABLATIONS[name]
        if cp and not main_cp:
            raise UserError(f"ablation {name} needs a --model with class projection")
        if not cp and main_cp and no_cp_dir is None:
            raise UserError(f"ablation {name} needs --model-no-cp PATH: a second GAN trained "
                            "with --no-class-projection")
        if sa and threshold == 0:
            raise UserError(f"ablation {name} keeps selection on, but --threshold is 0")
        wanted.append((cp, sa))
    seen = set()
    for cp, sa in wanted:
        if (cp, sa) in seen:
            continue
        seen.add((cp, sa))
        source_model = model_dir if cp == main_cp else no_cp_dir
        key = _aug_key(cp, sa)
        plan = SyntheticPlan(source_model, int(per_class), float(threshold if sa else 0.0),
                             float(truncation), int(seed))
        arms.append(Arm(key, aug_title(cp, sa), os.path.join(out_dir, "synthetic", key), plan))
    return arms


def _class_projection(model_dir: str) -> bool:
    from hvitgan_tf.exported_model import read_metadata

    config = read_metadata(model_dir).get("model_config") or {}
    return bool(config.get("generator", {}).get("class_projection", True))


# -- names and checks -------------------------------------------------------------------------

def row_title(model: str, arm: Arm) -> str:
    title = MODEL_TITLES.get(model, model)
    return f"{title} {arm.title}" if arm.title else title


def check_models(models: Sequence[str], options: ClassifierOptions) -> None:
    """Fail before any training on a model name or option combination that cannot work."""
    from hvitgan_tf.evaluation import gan_head  # noqa: F401  registers hvitgan_head
    from hvitgan_tf.evaluation.classifiers import available_classifiers

    if not models:
        raise UserError("--models is empty")
    unknown = [m for m in models if m not in available_classifiers()]
    if unknown:
        raise UserError(f"unknown classifier(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(available_classifiers())}")
    if len(set(models)) != len(models):
        raise UserError(f"--models names a classifier twice: {', '.join(models)}")
    if options.pretrained:
        without = [m for m in models if m not in PRETRAINABLE_MODELS and m != "hvitgan_head"]
        if without:
            raise UserError(f"--pretrained: Keras publishes ImageNet weights only for "
                            f"{', '.join(PRETRAINABLE_MODELS)}; {', '.join(without)} would "
                            "train from scratch anyway. Drop --pretrained or those models "
                            "(hvitgan_head starts from a GAN via --gan-run instead)")


