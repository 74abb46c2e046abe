"""Running a training job in a run folder: prepare (resume checks, ``run.json``, model,
callbacks), run (fit or custom loop), finish (final checkpoint, export). What the job is —
settings merged with a resumed run, configs, data — is decided in ``job.py``.

A run folder holds everything needed to reproduce or continue the run::

    RUN_DIR/run.json          model config, training config, data selection, class names
    RUN_DIR/checkpoints/      full training state (see checkpoints.py)
    RUN_DIR/samples/          per-class EMA sample grid after every epoch
    RUN_DIR/logs/             TensorBoard scalars and images
    RUN_DIR/metrics.csv       every loss term, per epoch

Single device, ``MirroredStrategy`` and ``TPUStrategy`` train with ``Model.fit``;
``MultiWorkerMirroredStrategy`` uses a small custom loop around the *same* ``train_step``
because Keras 3's ``fit`` fails under it (docs/keras3-notes.md §2.6, keras#20585).
"""
import dataclasses
import math
import os
import shlex
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf import __version__
from hvitgan_tf._backend import runtime_record
from hvitgan_tf.errors import UserError
from hvitgan_tf.fileio import (NoSpaceLeft, is_disk_full, lock_folder, read_json,
                               release_folder, remove_abandoned_temporaries, write_json)
from hvitgan_tf.models.config import ModelConfig
from hvitgan_tf.training import callbacks as cb
from hvitgan_tf.training import checkpoints
from hvitgan_tf.training.config import STREAM_FIELDS, TrainConfig
from hvitgan_tf.training.data_stream import (make_training_stream, steps_per_epoch,
                                             training_examples)
from hvitgan_tf.training.gan import HViTGAN
from hvitgan_tf.training.strategy import is_chief, select_strategy, shared_storage_hint
from hvitgan_tf.training.validation_fid import validation_fid_callback

RUN_FILE = "run.json"


class TrainingDiverged(UserError):
    """A loss became NaN/Inf; the last good checkpoint is kept."""

    exit_code = 3


@dataclasses.dataclass
class RunInfo:
    """What a finished (or stopped) ``train`` call leaves behind."""

    run_dir: str
    iterations: int
    epochs_done: int
    checkpoint: str
    seconds: float
    images_per_second: float
    export_dir: str = None


def run_file(run_dir):
    return os.path.join(run_dir, RUN_FILE)


def load_run(run_dir):
    """``(ModelConfig, TrainConfig, data_info)`` saved in a run folder."""
    path = run_file(run_dir)
    if not os.path.exists(path):
        raise UserError(f"{run_dir} is not an hvitgan-tf run folder (no {RUN_FILE})."
                        + shared_storage_hint())
    record = read_json(path)
    try:
        return (ModelConfig.from_dict(record["model"]), TrainConfig.from_dict(record["train"]),
                record["data"])
    except (KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is not a run record written by hvitgan-tf (no usable "
                        f"{error}); restore it or start a new run in another --out") from None


def _differences(old, new, fields=None):
    old, new = _flatten(old), _flatten(new)
    keys = sorted(set(old) | set(new))
    if fields is not None:
        keys = [k for k in keys if k in fields]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _flatten(data, prefix=""):
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def check_resume(run_dir, model_config, train_config, data_info):
    """Refuse to resume with another model or data stream; returns the saved configs."""
    saved_model, saved_train, saved_data = load_run(run_dir)
    changed = _differences(saved_model.to_dict(), model_config.to_dict())
    if changed:
        raise UserError(
            f"--resume refused: the model config differs from the one saved in "
            f"{run_file(run_dir)} ({'; '.join(changed)}). Resume with the same model, or "
            f"train into a new --out folder."
        )
    changed = _differences(saved_train.to_dict(), train_config.to_dict(), STREAM_FIELDS)
    changed += _differences({k: saved_data.get(k) for k in ("spec", "fraction", "limit",
                                                            "seed", "class_names")},
                            {k: data_info.get(k) for k in ("spec", "fraction", "limit",
                                                           "seed", "class_names")})
    if changed:
        raise UserError(
            f"--resume refused: the data stream would change ({'; '.join(changed)}); "
            f"the resumed run would not continue the same experiment."
        )


def train(run_dir, source, model_config, train_config, **options):
    """Train (or resume) a run; see :func:`_train`. The run folder is locked against a second
    trainer while this runs and released when it returns or fails.

    A full disk, whatever was being written, is raised as :class:`NoSpaceLeft` naming the file
    and the checkpoint kept, with the command that continues the run. Every file of the run
    folder is written under a temporary name and renamed, except the logs (metrics.csv and
    TensorBoard's event files), which are appended in place; so nothing else is left
    half-written."""
    try:
        return _train(run_dir, source, model_config, train_config, **options)
    except Exception as error:
        if not is_disk_full(error) or getattr(error, "aftermath", None):
            raise
        raise NoSpaceLeft.of(error, run_dir).then(_resume_advice(run_dir)) from error
    finally:
        release_folder(run_dir)


def _resume_advice(run_dir):
    """What a run stopped by a full disk keeps, and the command that goes on from there."""
    kept = checkpoints.kept(run_dir)
    if kept is None:
        return ("no checkpoint had been written yet; free some space and run the same command "
                "again")
    return (f"kept {kept['path']} (iteration {kept['iteration']}); free some space, then "
            f"continue with: hvitgan-tf train --out {shlex.quote(os.fspath(run_dir))} --resume")


def _train(run_dir, source, model_config, train_config, *, resume=False, data_info=None,
           verbose=1, strategy=None, export=None, extra_callbacks=(), fid_selection=None,
           export_options=None):
    """Train (or resume) a run: prepare, run, finish. Returns a ``RunInfo``.

    Args:
        source: an ``hvitgan_tf.data`` source (train split used; its class names and counts
            fix ``num_classes`` and the fake-label prior).
        model_config: must have ``num_classes == source.num_classes``.
        resume: continue from ``RUN_DIR/checkpoints/last.json``.
        data_info: what to record about the data selection (spec, fraction, limit, seed);
            by default the source's own.
        strategy: ``(tf.distribute.Strategy, kind)`` from ``select_strategy``; chosen from
            ``train_config.strategy`` when omitted. Multi-worker strategies must be created
            before any other TensorFlow work, so callers that read data first pass it in.
        export: optional callable ``export(run_dir) -> path`` run on the chief at the end.
        fid_selection: optional ``hvitgan_tf.training.validation_fid.FIDSelection``; when
            enabled, validation FID/KID are logged and the best checkpoint is marked
            (docs/method.md §9).
        export_options: what to record about the export (the CLI's ``--export``,
            ``--export-dir``, ``--name``), so that ``--resume`` exports as the run started.
    """
    run = _prepare(run_dir, source, model_config, train_config, resume=resume,
                   data_info=data_info, verbose=verbose, strategy=strategy,
                   fid_selection=fid_selection, export_options=export_options)
    run.callbacks += list(extra_callbacks)
    progress = cb.CompactProgbar() if verbose else None
    if progress is not None:
        run.callbacks.append(progress)
    try:
        seconds = _run(run, verbose)
    except BaseException:
        if progress is not None:
            progress.end_line()
        raise
    return _finish(run, seconds, export)


@dataclasses.dataclass
class _Run:
    """A prepared run: what running and finishing share."""

    run_dir: str
    train_config: TrainConfig
    strategy: object  # tf.distribute.Strategy
    kind: str  # select_strategy's name for it
    chief: bool
    model: HViTGAN
    stream_from: object  # iteration -> the training stream from that iteration on
    counter: cb.IterationCounter
    guard: cb.DivergenceGuard
    callbacks: list
    start_iteration: int
    total: int  # iterations of the whole run
    per_epoch: int
    epochs: int
    export_options: dict = None  # the CLI's --export, --export-dir, --name, when known


def _data_record(source, model_config, data_info):
    """What ``run.json`` records of the data: the selection plus the source's classes."""
    if model_config.num_classes != source.num_classes:
        raise UserError(f"the model has {model_config.num_classes} classes but "
                        f"{source.spec!r} has {source.num_classes}")
    if not data_info:  # the selection the source was opened with
        data_info = {"spec": source.spec, **{key: getattr(source, key, None)
                                             for key in ("fraction", "limit", "seed")}}
    data_info = dict(data_info)
    data_info.update(class_names=list(source.class_names),
                     class_counts=[int(c) for c in source.class_counts("train")],
                     num_train=int(source.num_examples("train")))
    return data_info


def _starting_point(run_dir, model_config, train_config, data_info, resume):
    """``(record, repair)``: the checkpoint to resume from, ``last.json``'s or, when it or the
    file it names is damaged, the newest intact one's (saying so; ``repair`` is then True:
    ``last.json`` must be pointed at it). ``(None, False)`` for a new run (refusing a folder
    that already holds one)."""
    if not resume:
        if os.path.exists(checkpoints.folder(run_dir)) and os.listdir(
                checkpoints.folder(run_dir)):
            raise UserError(f"{run_dir} already holds a training run; pass --resume to "
                            f"continue it or choose another --out folder")
        return None, False
    check_resume(run_dir, model_config, train_config, data_info)
    # Every file a resume reads back is checked before anything is written: a damaged
    # best.json would otherwise stop the run at its first save, after training. It is not
    # replaced like last.json: the best checkpoint is not known from the files alone.
    checkpoints.check_best(run_dir)
    start, note = checkpoints.resume_point(run_dir)
    if start is None:
        raise UserError(f"--resume: {run_dir} has no checkpoint to resume from."
                        + shared_storage_hint())
    if note:
        print(f"note: {note}", file=sys.stderr)
    _warn_if_no_longer_deterministic(run_dir)
    return start, note is not None


def _warn_if_no_longer_deterministic(run_dir):
    """A run started with --deterministic and resumed without it keeps going, but no longer
    bit for bit; say so."""
    try:
        before = read_json(os.path.join(run_dir, RUN_FILE)).get("runtime", {})
    except (OSError, ValueError, UserError):
        return  # check_resume has read run.json already; nothing to add here
    if before.get("deterministic") and not runtime_record()["deterministic"]:
        print("note: this run was started with --deterministic; resumed without it, it "
              "matches an uninterrupted run only up to float rounding (add --deterministic)",
              file=sys.stderr)


def _remove_abandoned_temporaries(run_dir):
    """The temporary files a killed trainer left beside ``run.json`` and the sample grids
    (``checkpoints/`` is cleaned at every save)."""
    for folder in (run_dir, os.path.join(run_dir, "samples")):
        remove_abandoned_temporaries(folder)


def _schedule(train_config, num_train):
    """``(iterations per epoch, total iterations, epochs)``."""
    per_epoch = train_config.steps_per_epoch or steps_per_epoch(
        num_train, train_config.batch_size, train_config.n_critic)
    total = train_config.total_steps or per_epoch * train_config.epochs
    return per_epoch, total, math.ceil(total / per_epoch)


def _prepare(run_dir, source, model_config, train_config, *, resume, data_info, verbose,
             strategy, fid_selection, export_options) -> _Run:
    """Check the start, lock the folder, build (and restore) the model, write ``run.json``
    and the callbacks."""
    data_info = _data_record(source, model_config, data_info)
    start, repair = _starting_point(run_dir, model_config, train_config, data_info, resume)

    if train_config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    strategy, kind = strategy or select_strategy(train_config.strategy)
    chief = is_chief(strategy)
    if chief:
        lock_folder(run_dir, "train")  # two trainers on one --out would mix checkpoints
        _remove_abandoned_temporaries(run_dir)
    jit = train_config.jit
    if jit and strategy.num_replicas_in_sync > 1:
        print("note: XLA (--jit) is off under a multi-device strategy (it cannot place "
              "variables of other replicas; docs/keras3-notes.md §2.5)", file=sys.stderr)
        jit = False

    record = {"hvitgan_tf_version": __version__, "model": model_config.to_dict(),
              "train": train_config.to_dict(), "data": data_info,
              "strategy": kind, "replicas": strategy.num_replicas_in_sync,
              "runtime": runtime_record()}
    if fid_selection is not None and fid_selection.enabled:
        record["fid_selection"] = fid_selection.to_dict()  # --resume selects the same way
    if export_options is not None:
        record["export"] = dict(export_options)

    per_epoch, total, epochs = _schedule(train_config, data_info["num_train"])
    start_iteration = int(start["iteration"]) if start else 0
    if verbose and start:
        print(f"resuming from iteration {start_iteration} (epoch "
              f"{start_iteration // per_epoch + 1}, {start['weights']}) of {total}")
    if start_iteration >= total:
        print(f"{run_dir} already trained {start_iteration} of {total} iterations; nothing to do.")

    # Seeds Python, NumPy and TensorFlow: the initial weights are a function of --seed too
    # (and identical on every worker before MultiWorkerMirroredStrategy syncs them anyway).
    keras.utils.set_random_seed(train_config.seed)
    with strategy.scope():
        model = HViTGAN(model_config, train_config, data_info["class_counts"])
        model.compile(jit_compile=jit)
        if start:
            checkpoints.load_into(model, start["path"])
            if int(model.iterations_done.numpy()) != start_iteration:
                raise UserError(f"checkpoint {start['path']} is inconsistent with last.json")
    # Written only once the checkpoint has loaded: a refused resume (a foreign or damaged
    # checkpoint) leaves the run folder exactly as it was.
    if chief:
        os.makedirs(run_dir, exist_ok=True)
        write_json(run_file(run_dir), record)
        if repair:
            checkpoints.repair_last(run_dir, start, epoch=start_iteration // per_epoch)

    examples = training_examples(source, model_config.image_size, train_config.seed)

    def stream_from(iteration):
        return make_training_stream(
            strategy, examples, batch_size=train_config.batch_size,
            n_critic=train_config.n_critic, start_iteration=iteration)

    counter = cb.IterationCounter(start_iteration)
    guard = cb.DivergenceGuard(counter)
    run = _Run(run_dir=run_dir, train_config=train_config, strategy=strategy, kind=kind,
               chief=chief, model=model, stream_from=stream_from, counter=counter, guard=guard,
               callbacks=[counter, guard, cb.StopAtIteration(counter, total)],
               start_iteration=start_iteration, total=total, per_epoch=per_epoch,
               epochs=epochs, export_options=export_options)
    if chief:
        run.callbacks += _chief_callbacks(run, source, model_config, data_info, fid_selection,
                                          resume, verbose)
    return run


def _chief_callbacks(run, source, model_config, data_info, fid_selection, resume, verbose):
    """What only the chief writes: checkpoints, validation FID, CSV, TensorBoard, samples."""
    run_dir, train_config = run.run_dir, run.train_config
    callbacks = [cb.CheckpointSaver(run_dir, run.counter, run.guard,
                                    every=train_config.checkpoint_every,
                                    steps_per_epoch=run.per_epoch)]
    if fid_selection is not None and fid_selection.enabled:
        # After the saver (it reuses the epoch-end checkpoint), before the CSV and
        # TensorBoard loggers (they record its val_fid / val_kid).
        callbacks.append(validation_fid_callback(
            run_dir, source, fid_selection, model_config, data_info, run.counter, run.guard,
            run.per_epoch, verbose=verbose))
    log_dir = os.path.join(run_dir, "logs")
    return callbacks + [
        cb.MetricsCSV(os.path.join(run_dir, "metrics.csv"), append=resume),
        cb.TensorBoardLogs(log_dir, write_graph=False, update_freq="epoch"),
        cb.SampleGrid(run_dir, source.class_names, train_config.samples_per_class,
                      model_config.latent_dim, run.guard, log_dir=log_dir),
    ]


def _run(run: _Run, verbose) -> float:
    """Train from the start iteration to the end (or a stop); returns the seconds it took."""
    began = time.time()
    if run.start_iteration < run.total:
        if run.kind == "multi_worker":
            _custom_loop(run.model, run.strategy, run.stream_from(run.start_iteration),
                         run.callbacks, run.start_iteration, run.total, run.per_epoch,
                         run.epochs, verbose)
        else:
            _fit(run.model, run.stream_from, run.callbacks, run.start_iteration, run.total,
                 run.per_epoch, run.epochs, verbose)
    return time.time() - began


def _finish(run: _Run, seconds, export) -> RunInfo:
    """Refuse a diverged run, save the final state, export, and let the workers leave
    together."""
    run_dir, counter, train_config = run.run_dir, run.counter, run.train_config
    if run.guard.stopped:
        iteration, key, value = run.guard.stopped
        last = checkpoints.read_record(run_dir, "last")
        kept = (f"the last good checkpoint is {last['path']} (iteration {last['iteration']})"
                if last else "no checkpoint had been written yet")
        raise TrainingDiverged(
            f"training stopped at iteration {iteration}: {key} became {value}; {kept}. "
            f"Lower --lr-g/--lr-d or check the data for NaN/Inf values."
        )
    if run.chief:
        last = checkpoints.read_record(run_dir, "last")
        if last is None or last["iteration"] != counter.iteration:
            checkpoints.save(run.model, run_dir, counter.iteration,
                             epoch=counter.iteration // run.per_epoch)
    done = counter.iteration - run.start_iteration
    info = RunInfo(
        run_dir=run_dir, iterations=counter.iteration,
        epochs_done=counter.iteration // run.per_epoch,
        checkpoint=checkpoints.read_record(run_dir, "last")["path"] if run.chief else None,
        seconds=seconds,
        images_per_second=(done * train_config.batch_size * (train_config.n_critic + 1)
                           / seconds if done and seconds > 0 else 0.0),
    )
    if export is not None and run.chief:
        info.export_dir = _export_at_the_end(run, export)
    if run.kind == "multi_worker":
        # Workers leave together: one that exits while the chief still saves or exports makes
        # the chief's coordination service report the lost worker as an error.
        _barrier(run.strategy)
    return info


def _export_at_the_end(run: _Run, export):
    """``export(run_dir)``; a full disk says that training itself is complete and how to
    export it later."""
    try:
        return export(run.run_dir)
    except Exception as error:
        if not is_disk_full(error):
            raise
        last = checkpoints.read_record(run.run_dir, "last")
        command = ["hvitgan-tf", "export", os.fspath(run.run_dir)]
        options = run.export_options or {}
        for option in ("export_dir", "name"):
            if options.get(option):
                command += [f"--{option.replace('_', '-')}", os.fspath(options[option])]
        raise NoSpaceLeft.of(error, run.run_dir).then(
            f"training finished and kept {last['path']} (iteration {last['iteration']}); free "
            f"some space, then export it with: {shlex.join(command)}") from error


def _barrier(strategy):
    """Return only when every worker of ``strategy`` has reached this point."""
    @tf.function
    def all_reduce_one():
        one = strategy.run(lambda: tf.ones([]))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, one, axis=None)

    all_reduce_one()


def _segments(start_iteration, total, per_epoch):
    """``(first_iteration, first_epoch, steps_per_epoch)`` of the fit calls covering
    ``[start_iteration, total)``.

    A run resumed mid-epoch first finishes that epoch (a shorter fit call), then continues
    with whole epochs, so epoch numbers and checkpoints line up with an uninterrupted run.
    """
    epoch, into = divmod(start_iteration, per_epoch)
    segments = []
    if into:
        segments.append((start_iteration, epoch, per_epoch - into))
        epoch += 1
    if epoch * per_epoch < total:
        segments.append((epoch * per_epoch, epoch, per_epoch))
    return segments


def _fit(model, stream_from, callbacks, start_iteration, total, per_epoch, epochs, verbose):
    for first_iteration, first_epoch, steps in _segments(start_iteration, total, per_epoch):
        last_epoch = first_epoch + 1 if steps != per_epoch else epochs
        # Each fit call opens a new iterator, so each segment gets a stream starting at its
        # own first iteration.
        model.fit(stream_from(first_iteration), initial_epoch=first_epoch, epochs=last_epoch,
                  steps_per_epoch=steps, callbacks=callbacks, verbose=verbose and 1,
                  shuffle=False)
        if model.stop_training:
            break


def _custom_loop(model, strategy, stream, callbacks, start_iteration, total, per_epoch,
                 epochs, verbose):
    """The multi-worker path: ``strategy.run`` over the same ``train_step`` as ``fit``."""
    callback_list = keras.callbacks.CallbackList(
        callbacks, model=model, add_progbar=False, epochs=epochs, steps=per_epoch,
        verbose=verbose)

    @tf.function
    def distributed_step(batch):
        return strategy.run(model.train_step, args=(batch,))

    iterator = iter(stream)
    iteration = start_iteration
    callback_list.on_train_begin()
    logs = {}
    while iteration < total and not model.stop_training:
        epoch, into = divmod(iteration, per_epoch)
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for batch in range(into, per_epoch):
            callback_list.on_train_batch_begin(batch)
            per_replica = distributed_step(next(iterator))
            logs = {k: strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}
            iteration += 1
            callback_list.on_train_batch_end(batch, logs)
            if model.stop_training or iteration >= total:
                break
        logs = {k: float(np.asarray(v)) for k, v in logs.items()}
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end(logs)
