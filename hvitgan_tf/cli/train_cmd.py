"""``hvitgan-tf train``: parse the options, then let ``hvitgan_tf.training.job`` decide the job
(what ``--resume`` takes from the saved run) and ``hvitgan_tf.training.runner`` run it."""
import os

import click

from hvitgan_tf.cli.runtime import TFCommand
from hvitgan_tf.cli.options import data_options, feature_extractor_help
from hvitgan_tf.sampling.plan import DEFAULT_THRESHOLD
from hvitgan_tf.training.config import (ADVERSARIAL_LOSSES, DEFAULT_DIFFAUG,
                                        LOSS_WEIGHTING_MODES, PAPER_DIFFAUG, STRATEGIES,
                                        TrainConfig)
from hvitgan_tf.training.job import DEFAULTS


_SEED_HELP = ("Seed of everything random: the --fraction/--limit draw, the initial weights, "
              "noise, augmentation and data order (same seed and data, same run).")


@click.command(cls=TFCommand, context_settings={"show_default": True})
@data_options(seed_help=_SEED_HELP)
@click.option("--preset", default=DEFAULTS["preset"], metavar="NAME",
              help="Model size: small (CPU demo, 32 px), pcam96 (the paper's, 96 px), tiny "
                   "(tests). 'hvitgan-tf model summary --preset NAME' describes one.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), default="runs/demo",
              help="Run folder: checkpoints, samples, logs, metrics.csv, run.json.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint. Options you do not "
                   "give are taken from the saved run; a different model is refused.")
@click.option("--epochs", type=click.IntRange(min=1), default=TrainConfig.epochs,
              help="Passes over the training split. The default suits the demo (8-9 "
                   "minutes on 2 CPU cores); a PCam model needs hundreds, on a GPU.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Stop after this many iterations in total (overrides --epochs).")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Iterations per epoch (default: one pass over the training split).")
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainConfig.batch_size,
              help="Images per critic step, summed over all devices (the paper used 12).")
@click.option("--lr-g", type=click.FloatRange(min=0, min_open=True),
              default=TrainConfig.lr_g,
              help="Generator learning rate (Adam, betas 0 / 0.99). The paper's: 1e-4.")
@click.option("--lr-d", type=click.FloatRange(min=0, min_open=True),
              default=TrainConfig.lr_d,
              help="Discriminator learning rate.")
@click.option("--n-critic", type=click.IntRange(min=1), default=TrainConfig.n_critic,
              help="Critic updates per generator update. The paper's: 4.")
@click.option("--diffaug", default=DEFAULT_DIFFAUG, metavar="POLICY",
              help=f"DiffAugment policy applied to everything the critic sees ('none' to "
                   f"disable). The paper's: {PAPER_DIFFAUG} (rotation makes mirrored "
                   f"classes identical, cutout slows the class head; docs/method.md).")
@click.option("--class-diffaug", default=TrainConfig.class_diffaug, metavar="POLICY",
              help="DiffAugment policy of the images the class losses are computed on, or "
                   "'same': the critic's images, the paper's form. The default keeps random "
                   "translations away from the class head, which barely learns under them "
                   "(docs/method.md).")
@click.option("--mode-seeking", type=click.FloatRange(min=0), default=TrainConfig.mode_seeking,
              metavar="WEIGHT",
              help="Weight of a mode-seeking term for the generator: two images of one label "
                   "are pushed apart by how far apart their noises are (against one image "
                   "per label). Default 0.1, 1.0 on the demo data; 0: off, the paper's "
                   "form. Needs an even --batch-size.")
@click.option("--mode-seeking-blur", type=click.FloatRange(min=0),
              default=TrainConfig.mode_seeking_blur, metavar="PIXELS",
              help="Blur both images of a mode-seeking pair with a Gaussian of this standard "
                   "deviation (pixels) before comparing them, so that only differences in "
                   "layout and colour count, not grain or tiling. Default 0 (the pixels "
                   "themselves), 3 on the demo data.")
@click.option("--adversarial-loss", type=click.Choice(ADVERSARIAL_LOSSES),
              default=TrainConfig.adversarial_loss,
              help="The adversarial game: wgan-gp (the method's: Wasserstein critic, gradient "
                   "penalty on interpolates) or logistic (non-saturating loss, R1 penalty on "
                   "the real images; on the demo more detail but as speckle, and it needs "
                   "--mode-seeking 0.3: docs/method.md §11.23).")
@click.option("--r1-gamma", type=click.FloatRange(min=0), default=TrainConfig.r1_gamma,
              metavar="GAMMA",
              help="Weight γ of the R1 penalty γ/2 E|∇D(x)|² (--adversarial-loss logistic).")
@click.option("--loss-weighting", type=click.Choice(LOSS_WEIGHTING_MODES), default="temperature",
              help="How the three auxiliary cross-entropies are combined (docs/method.md §4).")
@click.option("--weight-adversarial", is_flag=True,
              help="Ablation: also give the WGAN terms a learned weight (reported as worse).")
@click.option("--class-gradient-share", type=click.FloatRange(min=0),
              default=TrainConfig.class_gradient_share, metavar="SHARE",
              help="Floor on the class losses' gradient in the weights they share with the "
                   "critic, as a fraction of the critic terms' gradient (scaled up to 100x "
                   "when smaller). 0: the paper's plain sum, under which the class head "
                   "stayed at chance (docs/method.md).")
@click.option("--g-class-gradient-share", type=click.FloatRange(min=0),
              default=TrainConfig.g_class_gradient_share, metavar="SHARE",
              help="The same floor for the generator's class loss (0: the paper's sum; "
                   "boosting it while the class head is weak collapsed the samples).")
@click.option("--d-class-on-fakes/--no-d-class-on-fakes",
              default=TrainConfig.d_class_on_fakes,
              help="Also train the discriminator's class head on generated images (the "
                   "paper's CE_3). Off by default: head and generator then agreed on one "
                   "colour per label instead of learning the classes.")
@click.option("--critic-projection/--no-critic-projection",
              default=TrainConfig.critic_projection,
              help="Add the class head's logit of each image's label to the critic score (a "
                   "projection critic), so the WGAN terms carry the label too (default). "
                   "--no-critic-projection: the paper's critic, the source head alone.")
@click.option("--class-warmup", type=click.IntRange(min=0), default=TrainConfig.class_warmup,
              metavar="N",
              help="First N iterations: only the critic's class head (and the features under "
                   "it) learns, on real images; the adversarial terms and the generator wait. "
                   "0: the paper's start.")
@click.option("--no-class-projection", is_flag=True,
              help="Ablation: plain LayerNorm instead of conditional LN; the label enters only "
                   "at the input projection.")
@click.option("--mixed-precision", is_flag=True, help="Train in mixed_bfloat16.")
@click.option("--jit/--no-jit", default=TrainConfig.jit,
              help="Compile the training step with XLA (one device only). Measured on a "
                   "2-core CPU (benchmarks/run.py): pcam96 iterations 1.23x faster but 2 GiB "
                   "more memory, small no faster, and a first step 1.5-3 min longer. Same "
                   "random numbers either way.")
@click.option("--deterministic", is_flag=True,
              help="Bit-identical reruns and resumes from the same seed on the same machine: "
                   "TensorFlow runs one op at a time with deterministic kernels. Without it "
                   "runs of the small model agree only up to float rounding, which a GAN "
                   "amplifies; measured cost about 1.3x per iteration on 2 CPU cores "
                   "(docs/method.md §11.21). Give it again with --resume.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=TrainConfig.strategy,
              help="auto: several hosts from TF_CONFIG, a TPU, several GPUs, or one device.")
@click.option("--checkpoint-every", type=click.IntRange(min=0),
              default=TrainConfig.checkpoint_every,
              help="Iterations between checkpoints inside an epoch (0: only at epoch ends).")
@click.option("--fid-every", type=click.IntRange(min=0), default=DEFAULTS["fid_every"],
              metavar="N",
              help="Every N epochs (and after the first and the last), score the EMA "
                   "generator by FID/KID against the validation split, log val_fid/val_kid "
                   "and keep the lowest-FID checkpoint as best.json, which the export uses. "
                   "0: off (the default, because the default inception extractor needs "
                   "ImageNet weights that cannot be downloaded here; see --fid-features).")
@click.option("--fid-features", default=DEFAULTS["fid_features"], metavar="EXTRACTOR",
              help=feature_extractor_help("FID features"))
@click.option("--fid-samples", type=click.IntRange(min=2), default=DEFAULTS["fid_samples"],
              metavar="N",
              help="Generated images per FID evaluation (fixed latents, labels in the "
                   "training class proportions, truncation 1).")
@click.option("--export/--no-export", default=DEFAULTS["export"],
              help="Export a TF Serving SavedModel at the end.")
@click.option("--export-dir", type=click.Path(file_okay=False),
              default=DEFAULTS["export_dir"],
              help="Base folder of exported models: EXPORT_DIR/NAME/VERSION/.")
@click.option("--name", default=DEFAULTS["name"], help="Model name under --export-dir.")
@click.pass_context
def train(ctx, run_dir, resume, **options):
    """Train the conditional transformer GAN (WGAN-GP critic + weighted auxiliary class
    losses) and export it.

    With no options it trains the small preset on the built-in demo patches for a few
    minutes on a CPU. Interrupt it at any time and continue with --resume.

    \b
    Examples:
      hvitgan-tf train --out runs/demo
      hvitgan-tf train --data pcam-h5:/data/pcam --preset pcam96 --limit 32768 \\
          --batch-size 12 --epochs 500 --out runs/pcam
      hvitgan-tf train --out runs/pcam --resume
    """
    from hvitgan_tf.export import export_run
    from hvitgan_tf.training.job import build_job

    options.pop("deterministic")  # TFCommand set up TensorFlow with it; not a training option
    # Only the options given on the command line: --resume takes the others from the run.
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    if given.pop("no_class_projection", False):
        given["class_projection"] = False
    job = build_job(run_dir, given, resume=resume)

    click.echo(_headline(job.source, job.model_config, run_dir, resume, job.xla))
    try:
        info = job.train(export_run=export_run)
    except KeyboardInterrupt:
        click.echo(_interrupted_message(run_dir), err=True)
        raise SystemExit(130) from None
    click.echo(f"trained {info.iterations} iterations ({info.epochs_done} epochs) in "
               f"{info.seconds:.0f} s, {info.images_per_second:.1f} images/s through D and G")
    if info.checkpoint is None:  # a multi-worker run's non-chief worker: it writes nothing
        click.echo("this worker computed and synchronised; worker 0 (the chief) writes the "
                   f"checkpoints, samples, logs and the export in {run_dir}")
        return
    click.echo(f"checkpoint:   {info.checkpoint}")
    if job.fid_selection.enabled:
        _echo_best(run_dir)
    click.echo(f"samples:      {os.path.join(run_dir, 'samples')}/")
    click.echo(f"metrics:      {os.path.join(run_dir, 'metrics.csv')}  "
               f"(tensorboard --logdir {os.path.join(run_dir, 'logs')})")
    if info.export_dir:
        click.echo(f"exported:     {info.export_dir}")
        click.echo(f"next:         hvitgan-tf sample --model {os.path.dirname(info.export_dir)}"
                   f" --threshold {DEFAULT_THRESHOLD:g} --per-class 100 --out synthetic")


def _echo_best(run_dir):
    from hvitgan_tf.training.checkpoints import read_record

    best = read_record(run_dir, "best")
    if best is not None and "val_fid" in best:
        click.echo(f"best (FID):   {best['path']} (epoch {best['epoch']}, validation FID "
                   f"{best['val_fid']:.4g}); exported by default")


def _interrupted_message(run_dir):
    """What Ctrl-C leaves: the checkpoint kept and the command that continues from it."""
    from hvitgan_tf.training.checkpoints import kept

    last = kept(run_dir)
    if last is None:
        return f"Interrupted before the first checkpoint; nothing to resume in {run_dir}."
    return (f"Interrupted. Kept {last['path']} (iteration {last.get('iteration', '?')}); "
            f"continue with: hvitgan-tf train --out {run_dir} --resume")


def _headline(source, model_config, run_dir, resume, xla):
    verb = "resuming" if resume else "training"
    return (f"{verb} {model_config.preset} ({model_config.image_size} px, "
            f"{model_config.num_classes} classes: {', '.join(source.class_names)}) on "
            f"{source.spec} ({source.num_examples('train')} training patches) -> {run_dir}"
            + ("\nthe first step compiles the training step with XLA (--jit): a few minutes "
               "on a CPU" if xla else ""))
