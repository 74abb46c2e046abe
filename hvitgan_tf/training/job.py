"""A training job, decided: settings merged with the run it resumes, configs, data, strategy.

``hvitgan-tf train``, the TFX trainer and the tests describe a job by *settings*, named as the
CLI's options (``batch_size``, ``steps``, ``data``, ``limit``, ``fid_every``, ``export_dir``
...). ``build_job(run_dir, given, resume=)`` turns the settings that were given into everything
``runner.train`` needs::

    job = build_job("runs/pcam", {"steps": 5000}, resume=True)
    info = job.train(export_run=hvitgan_tf.export.export_run)

Each setting not given is, on ``resume``, the one the run in ``run_dir`` was started with
(``run.json``: its training config, data selection, FID selection and export choice), else its
default. So ``--resume`` continues the same experiment with only what was asked changed, and
``runner.check_resume`` refuses what would change the model or the data stream.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from hvitgan_tf.errors import UserError
from hvitgan_tf.training.config import TrainConfig, data_train_defaults

#: Setting -> ``TrainConfig`` field, for the settings of the training config (all of them are
#: taken from the saved run on resume).
TRAIN_SETTINGS = {
    "epochs": "epochs", "steps": "total_steps", "steps_per_epoch": "steps_per_epoch",
    "batch_size": "batch_size", "lr_g": "lr_g", "lr_d": "lr_d", "n_critic": "n_critic",
    "diffaug": "diffaug", "loss_weighting": "loss_weighting",
    "weight_adversarial": "weight_adversarial", "mixed_precision": "mixed_precision",
    "class_gradient_share": "class_gradient_share", "d_class_on_fakes": "d_class_on_fakes",
    "g_class_gradient_share": "g_class_gradient_share", "critic_projection": "critic_projection",
    "class_warmup": "class_warmup", "class_diffaug": "class_diffaug",
    "mode_seeking": "mode_seeking", "mode_seeking_blur": "mode_seeking_blur",
    "adversarial_loss": "adversarial_loss", "r1_gamma": "r1_gamma",
    "jit": "jit", "seed": "seed", "strategy": "strategy",
    "checkpoint_every": "checkpoint_every",
}
#: The data selection (``seed``, a training setting, draws the subset too).
DATA_SETTINGS = ("data", "data_dir", "fraction", "limit", "skip_bad")
#: Setting -> ``FIDSelection`` field.
FID_SETTINGS = {"fid_every": "every", "fid_features": "features", "fid_samples": "num_samples"}
EXPORT_SETTINGS = ("export", "export_dir", "name")

#: Defaults of the settings that are not ``TrainConfig`` fields. ``class_projection`` None is
#: the preset's (the CLI's ``--no-class-projection`` gives False).
DEFAULTS = {
    "preset": "small", "class_projection": None,
    "data": "demo", "data_dir": None, "fraction": None, "limit": None, "skip_bad": False,
    "fid_every": 0, "fid_features": "inception", "fid_samples": 1000,
    "export": True, "export_dir": "saved_models", "name": "hvitgan",
    **{setting: getattr(TrainConfig, field) for setting, field in TRAIN_SETTINGS.items()},
}


def saved_settings(run_dir: str) -> dict:
    """The settings the run in ``run_dir`` was started with (those its ``run.json`` knows)."""
    from hvitgan_tf.fileio import read_json
    from hvitgan_tf.training.runner import load_run, run_file
    from hvitgan_tf.training.strategy import shared_storage_hint

    if not os.path.isdir(run_dir):
        raise UserError(f"--resume: {run_dir} does not exist." + shared_storage_hint())
    model_config, train_config, data_info = load_run(run_dir)
    record = read_json(run_file(run_dir))
    saved = {setting: getattr(train_config, field) for setting, field in TRAIN_SETTINGS.items()}
    saved.update({setting: data_info[setting] for setting in DATA_SETTINGS
                  if setting in data_info})
    saved.update(preset=model_config.preset,
                 class_projection=model_config.generator.class_projection)
    fid = record.get("fid_selection", {})  # kept only when the run selected by FID
    saved.update({setting: fid[field] for setting, field in FID_SETTINGS.items() if field in fid})
    export = record.get("export", {})
    saved.update({setting: export[setting] for setting in EXPORT_SETTINGS if setting in export})
    return saved


def job_settings(run_dir: str, given: Optional[dict] = None, *, resume: bool = False) -> dict:
    """Every setting of a job: ``given``, else (on ``resume``) the saved run's, else the
    data's default (``DATA_TRAIN_DEFAULTS``), else the default."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise UserError(f"unknown training setting(s) {', '.join(unknown)}; known: "
                        f"{', '.join(DEFAULTS)}")
    saved = saved_settings(run_dir) if resume else {}
    data = given.get("data", saved.get("data", DEFAULTS["data"]))
    return {**DEFAULTS, **data_train_defaults(data), **saved, **given}


@dataclasses.dataclass
class TrainingJob:
    """Everything ``runner.train`` is called with, decided (see ``build_job``)."""

    run_dir: str
    resume: bool
    settings: dict
    model_config: object  # hvitgan_tf.models.config.ModelConfig
    train_config: TrainConfig
    fid_selection: object  # hvitgan_tf.training.validation_fid.FIDSelection
    source: object  # hvitgan_tf.data.DataSource
    strategy: tuple  # (tf.distribute.Strategy, kind), from select_strategy

    @property
    def data_info(self) -> dict:
        """The data selection as ``run.json`` records it (what ``--resume`` reads back)."""
        info = {setting: self.settings[setting] for setting in DATA_SETTINGS}
        info.update(spec=self.settings["data"], seed=self.settings["seed"])
        return info

    @property
    def export_options(self) -> dict:
        return {setting: self.settings[setting] for setting in EXPORT_SETTINGS}

    @property
    def xla(self) -> bool:
        """Whether the step is compiled with XLA (never under a multi-device strategy)."""
        return self.train_config.jit and self.strategy[0].num_replicas_in_sync == 1

    def exporter(self, export_run):
        """``export(run_dir) -> version folder`` as the settings ask, or None (``--no-export``).
        ``export_run`` is ``hvitgan_tf.export.export_run``, handed in by the caller: export
        stands above training (it loads the trained networks), so training does not import it.
        """
        if not self.settings["export"] or export_run is None:
            return None
        export_dir, name = self.settings["export_dir"], self.settings["name"]
        return lambda folder: export_run(folder, export_dir=export_dir, name=name)

    def train(self, export_run=None, **options):
        """``runner.train`` of this job, exporting at the end with ``export_run`` (see
        ``exporter``) when the settings ask for it; ``options`` (``verbose``,
        ``extra_callbacks``) pass on. Returns its ``RunInfo``."""
        from hvitgan_tf.training.runner import train

        return train(self.run_dir, self.source, self.model_config, self.train_config,
                     resume=self.resume, data_info=self.data_info, strategy=self.strategy,
                     export=self.exporter(export_run), fid_selection=self.fid_selection,
                     export_options=self.export_options, **options)


def build_job(run_dir: str, given: Optional[dict] = None, *, resume: bool = False
              ) -> TrainingJob:
    """The job of the settings ``given`` (the rest from the resumed run or the defaults).

    Creates the distribution strategy, then opens the data: a multi-worker strategy must exist
    before any other TensorFlow work, and opening some sources already runs ``tf.data``.
    """
    from hvitgan_tf.data import open_source
    from hvitgan_tf.data.forms import check_subset_options, parse_source_spec
    from hvitgan_tf.models.config import preset
    from hvitgan_tf.training.strategy import select_strategy
    from hvitgan_tf.training.validation_fid import FIDSelection

    settings = job_settings(run_dir, given, resume=resume)
    fid_selection = FIDSelection(**{field: settings[setting]
                                    for setting, field in FID_SETTINGS.items()})
    train_config = TrainConfig(**{field: settings[setting]
                                  for setting, field in TRAIN_SETTINGS.items()})
    parse_source_spec(settings["data"])  # option mistakes fail before TensorFlow works
    check_subset_options(settings["fraction"], settings["limit"])
    strategy = select_strategy(train_config.strategy)
    source = open_source(settings["data"], data_dir=settings["data_dir"],
                         fraction=settings["fraction"], limit=settings["limit"],
                         seed=settings["seed"], skip_bad=settings["skip_bad"])
    model_config = preset(settings["preset"], num_classes=source.num_classes,
                          data=settings["data"])
    if settings["class_projection"] is not None:
        model_config = model_config.replace(class_projection=settings["class_projection"])
    return TrainingJob(run_dir=run_dir, resume=resume, settings=settings,
                       model_config=model_config, train_config=train_config,
                       fid_selection=fid_selection, source=source, strategy=strategy)
