"""How many images of which class: ``--classes``, ``--per-class`` / ``--num`` + ``--class-ratio``,
and what such a plan will cost.

docs/method.md §6.2: class-balanced quotas, either ``per_class`` images of every selected class or
``num``
images split by a class ratio (default uniform). Everything is checked here, before a model is
loaded, and every mistake is a one-line ``UserError`` naming the valid choices. From the rate
measured on the first batches, :class:`PlanEstimate` extrapolates the time and disk the rest
will take, and says so when that is more than a day or more than the free space (a warning:
the plan still runs). The defaults of a sampling run (``DEFAULT_THRESHOLD``, the attempt cap,
``DEFAULT_BATCH_SIZE``, ``DEFAULT_SHARD_SIZE``) live here too, so the CLI and the Beam pipeline
read them before anything heavy is imported. No TensorFlow.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Mapping, Optional, Sequence, Union

from hvitgan_tf.errors import UserError

#: Default ``--threshold``: keep an image when the class head gives its label at least this
#: probability (docs/method.md §6). The CLI, the Beam pipeline and ``sample()`` all default to it.
DEFAULT_THRESHOLD = 0.8
#: Default cap on attempts per class, as a multiple of the class's quota (``--max-attempts``).
DEFAULT_ATTEMPTS_PER_IMAGE = 20
#: Default ``--batch-size``: images generated per model call (the CLI's loop, ``sample()``) or
#: the largest batch RunInference hands the model (Beam). It changes speed, never the images.
DEFAULT_BATCH_SIZE = 64
#: Default ``--shard-size``: records per ``samples-NNNNN.tfrecord`` shard, in the CLI and Beam.
DEFAULT_SHARD_SIZE = 1024

ClassSpec = Union[None, str, Sequence[Union[str, int]]]
RatioSpec = Union[None, str, Sequence[float], Mapping[Union[str, int], float]]


def _items(value) -> List[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return [str(part).strip() if not isinstance(part, int) else part for part in value]


def class_label(token, class_names: Sequence[str]) -> int:
    """A class given by name or by integer id -> its label. A name wins over an id."""
    if isinstance(token, str):
        if token in class_names:
            return list(class_names).index(token)
        text = token.strip()
        if text.lstrip("-").isdigit():
            token = int(text)
        else:
            raise UserError(f"unknown class {token!r}; the model's classes are "
                            f"{_listing(class_names)}")
    if isinstance(token, bool) or not isinstance(token, int):
        raise UserError(f"a class is a name or an integer id, got {token!r}")
    if not 0 <= token < len(class_names):
        raise UserError(f"class id {token} is out of range; the model's classes are "
                        f"{_listing(class_names)}")
    return token


def select_classes(class_names: Sequence[str], classes: ClassSpec = None) -> List[int]:
    """Labels of the selected classes, in the order given (default: all, in label order)."""
    if classes is None or (isinstance(classes, str) and not classes.strip()):
        return list(range(len(class_names)))
    tokens = [token for token in _items(classes) if token != ""]
    if not tokens:
        raise UserError("--classes is empty; give class names or ids, e.g. "
                        f"--classes {','.join(class_names)}")
    labels = [class_label(token, class_names) for token in tokens]
    repeated = sorted({class_names[label] for label in labels if labels.count(label) > 1})
    if repeated:
        raise UserError(f"--classes names {', '.join(repeated)} more than once")
    return labels


def parse_class_ratio(class_ratio: RatioSpec, class_names: Sequence[str],
                      labels: Sequence[int]) -> Dict[int, float]:
    """Shares (summing to 1) for the selected ``labels``.

    ``class_ratio``: ``"0.5,0.5"`` (one number per selected class, in ``--classes`` order),
    ``"tumor=0.7,normal=0.3"`` (every selected class by name or id), a sequence of numbers or a
    mapping. Shares need not sum to 1 (``7,3`` works); they are normalised.
    """
    if class_ratio is None:
        return {label: 1.0 / len(labels) for label in labels}
    if isinstance(class_ratio, Mapping):
        pairs = [(key, value) for key, value in class_ratio.items()]
        named = True
    else:
        parts = [part for part in _items(class_ratio) if part != ""]
        named_parts = [isinstance(p, str) and "=" in p for p in parts]
        if any(named_parts) and not all(named_parts):
            raise UserError(f"--class-ratio {class_ratio!r} mixes name=share and bare shares; "
                            "use one form, e.g. 0.7,0.3 or tumor=0.7,normal=0.3")
        named = bool(parts) and all(named_parts)
        if named:
            pairs = [tuple(part.split("=", 1)) for part in parts]
        else:
            pairs = list(zip([None] * len(parts), parts))
    shares = {}
    if named:
        for key, value in pairs:
            label = class_label(key.strip() if isinstance(key, str) else key, class_names)
            if label not in labels:
                raise UserError(f"--class-ratio gives a share to {class_names[label]!r}, which "
                                f"is not among the selected classes ({_listing(class_names, labels)})")
            if label in shares:
                raise UserError(f"--class-ratio gives {class_names[label]!r} two shares")
            shares[label] = _share(value)
        missing = [class_names[label] for label in labels if label not in shares]
        if missing:
            raise UserError(f"--class-ratio has no share for {', '.join(missing)}; give every "
                            f"selected class a share or select classes with --classes")
    else:
        if len(pairs) != len(labels):
            raise UserError(f"--class-ratio has {len(pairs)} share(s) but {len(labels)} classes "
                            f"are selected ({_listing(class_names, labels)}); give one share per "
                            "class, in that order, or name them: "
                            + ",".join(f"{class_names[label]}=..." for label in labels))
        shares = {label: _share(value) for label, (_, value) in zip(labels, pairs)}
    total = sum(shares.values())
    if total <= 0:
        raise UserError("--class-ratio shares are all zero")
    return {label: shares[label] / total for label in labels}


def _share(value) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise UserError(f"--class-ratio share {value!r} is not a number") from None
    if not math.isfinite(share) or share < 0:
        raise UserError(f"--class-ratio share {value!r} must be a finite number >= 0")
    return share


def split_by_ratio(num: int, shares: Mapping[int, float]) -> Dict[int, int]:
    """``num`` split by ``shares`` (largest remainder; ties go to the earlier class)."""
    raw = {label: num * share for label, share in shares.items()}
    quotas = {label: int(math.floor(value)) for label, value in raw.items()}
    order = sorted(shares, key=lambda label: (-(raw[label] - quotas[label]),
                                              list(shares).index(label)))
    for label in order[:num - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def plan_quotas(class_names: Sequence[str], *, per_class: Optional[int] = None,
                num: Optional[int] = None, class_ratio: RatioSpec = None,
                classes: ClassSpec = None) -> Dict[int, int]:
    """``{label: quota}`` for the selected classes, in selection order (docs/method.md §6.2)."""
    if (per_class is None) == (num is None):
        raise UserError("give exactly one of --per-class N (N images of every class) or --num N "
                        "(N images split by --class-ratio)")
    labels = select_classes(class_names, classes)
    if per_class is not None:
        if class_ratio is not None:
            raise UserError("--class-ratio splits --num; with --per-class every class gets the "
                            "same number")
        _positive("--per-class", per_class)
        return {label: int(per_class) for label in labels}
    _positive("--num", num)
    return split_by_ratio(int(num), parse_class_ratio(class_ratio, class_names, labels))


def default_max_attempts(quota: int) -> int:
    return DEFAULT_ATTEMPTS_PER_IMAGE * max(int(quota), 1)


#: A plan expected to run longer than this is announced before it goes on (it is not refused).
LONG_PLAN_SECONDS = 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class PlanEstimate:
    """What the rest of a sampling run will cost, extrapolated from its first batches."""

    images: int  # images still to keep
    attempts: int  # attempts expected to keep them, at the acceptance seen so far
    seconds_per_attempt: float  # measured once the model has started
    bytes_per_image: float  # what the writer stores per kept image (files and manifest row)
    free_bytes: int  # free space on the file system of the output folder
    folder: str

    @property
    def seconds(self) -> float:
        return self.attempts * self.seconds_per_attempt

    @property
    def bytes(self) -> float:
        return self.images * self.bytes_per_image

    @property
    def too_long(self) -> bool:
        return self.seconds > LONG_PLAN_SECONDS

    @property
    def too_big(self) -> bool:
        return self.bytes > self.free_bytes

    def warning(self) -> Optional[str]:
        """One line when the plan would take more than a day or more disk than is free."""
        if not (self.too_long or self.too_big):
            return None
        rate = 1.0 / self.seconds_per_attempt if self.seconds_per_attempt > 0 else math.inf
        free = f"{format_bytes(self.free_bytes)} free in {self.folder}"
        return (f"warning: the {self.images:,} images still to keep ({self.attempts:,} "
                f"attempts) would take about {format_duration(self.seconds)}"
                + (" (more than a day)" if self.too_long else "")
                + f" at the measured {rate:,.1f} attempts/s, and about "
                f"{format_bytes(self.bytes)} of disk"
                + (f", more than the {free}" if self.too_big else f" ({free})")
                + "; going on anyway: Ctrl-C stops it, and a rerun with a smaller --per-class "
                "or --num keeps the images written")


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"``, ``"2.0 hours"``, ``"3.1 days"``, ``"31,710 years"``."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("hours", 3600.0),
                       ("min", 60.0)):
        if seconds >= size:
            value = seconds / size
            return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"


def format_bytes(count: float) -> str:
    """Decimal units, as ``df -H`` prints them: ``"512 B"``, ``"3.2 MB"``, ``"1,200 PB"``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    power = 0
    while power < len(units) - 1 and count >= 1000 ** (power + 1):
        power += 1
    value = count / 1000 ** power
    return (f"{value:,.0f} {units[power]}" if power == 0 or value >= 100
            else f"{value:.1f} {units[power]}")


def _positive(option, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{option} must be a positive integer, got {value!r}")


def _listing(class_names, labels=None):
    labels = range(len(class_names)) if labels is None else labels
    return ", ".join(f"{label}={class_names[label]}" for label in labels)
