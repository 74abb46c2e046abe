"""Quotas from --classes / --per-class / --num / --class-ratio, and what a plan will cost
(hvitgan_tf.sampling.plan)."""
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.sampling.plan import (PlanEstimate, default_max_attempts, format_bytes,
                                      format_duration, plan_quotas, split_by_ratio)

NAMES = ["normal", "tumor", "stroma"]


def test_per_class_and_selection_by_name_or_id():
    assert plan_quotas(NAMES, per_class=5) == {0: 5, 1: 5, 2: 5}
    assert plan_quotas(NAMES, per_class=2, classes="tumor,0") == {1: 2, 0: 2}
    assert plan_quotas(NAMES, per_class=2, classes=[2]) == {2: 2}
    assert default_max_attempts(5) == 100


def test_num_is_split_by_ratio_with_largest_remainders():
    assert plan_quotas(NAMES, num=10) == {0: 4, 1: 3, 2: 3}  # uniform; the tie goes first
    assert plan_quotas(NAMES[:2], num=10, class_ratio="0.7,0.3") == {0: 7, 1: 3}
    assert plan_quotas(NAMES[:2], num=10, class_ratio="tumor=7,normal=3") == {0: 3, 1: 7}
    assert plan_quotas(NAMES, num=5, classes="stroma,tumor", class_ratio="1,1") == {2: 3, 1: 2}
    assert plan_quotas(NAMES, num=4, class_ratio={"tumor": 1, "normal": 0, "stroma": 1}) == \
        {0: 0, 1: 2, 2: 2}
    assert sum(split_by_ratio(1001, {0: 1 / 3, 1: 1 / 3, 2: 1 / 3}).values()) == 1001


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "exactly one of --per-class"),
    (dict(per_class=1, num=2), "exactly one of --per-class"),
    (dict(per_class=0), "--per-class must be a positive integer"),
    (dict(num=-3), "--num must be a positive integer"),
    (dict(per_class=1, classes="tumour"), "unknown class 'tumour'; the model's classes are "
                                          "0=normal, 1=tumor, 2=stroma"),
    (dict(per_class=1, classes="3"), "class id 3 is out of range"),
    (dict(per_class=1, classes="tumor,1"), "more than once"),
    (dict(per_class=1, class_ratio="1,1,1"), "--class-ratio splits --num"),
    (dict(num=10, class_ratio="0.5,0.5"), "2 share(s) but 3 classes are selected"),
    (dict(num=10, class_ratio="tumor=1,normal=1"), "no share for stroma"),
    (dict(num=10, classes="tumor,normal", class_ratio="tumor=1,stroma=1"),
     "'stroma', which is not among the selected classes"),
    (dict(num=10, class_ratio="tumor=1,2,3"), "mixes name=share and bare shares"),
    (dict(num=10, class_ratio="1,-1,1"), "must be a finite number >= 0"),
    (dict(num=10, class_ratio="1,x,1"), "is not a number"),
    (dict(num=10, class_ratio="0,0,0"), "all zero"),
])
def test_mistakes_are_user_errors_naming_the_choices(kwargs, message):
    with pytest.raises(UserError) as error:
        plan_quotas(NAMES, **kwargs)
    assert message in str(error.value)


def estimate(**changes):
    fields = dict(images=1000, attempts=2000, seconds_per_attempt=0.01, bytes_per_image=5000,
                  free_bytes=10 ** 9, folder="/data/synthetic")
    return PlanEstimate(**{**fields, **changes})


def test_a_plan_of_minutes_that_fits_on_the_disk_says_nothing():
    small = estimate()
    assert small.seconds == pytest.approx(20) and small.bytes == 5e6
    assert small.warning() is None
    # Exactly a day and exactly the free space are still fine.
    assert estimate(attempts=8_640_000).warning() is None
    assert estimate(images=200_000).warning() is None


def test_a_plan_of_more_than_a_day_or_than_the_free_disk_is_announced():
    huge = estimate(images=2 * 10 ** 12, attempts=4 * 10 ** 12, seconds_per_attempt=0.004,
                    bytes_per_image=4200, free_bytes=50 * 10 ** 9)
    assert huge.warning() == (
        "warning: the 2,000,000,000,000 images still to keep (4,000,000,000,000 attempts) would "
        "take about 507 years (more than a day) at the measured 250.0 attempts/s, and "
        "about 8.4 PB of disk, more than the 50.0 GB free in /data/synthetic; going on "
        "anyway: Ctrl-C stops it, and a rerun with a smaller --per-class or --num keeps the "
        "images written")
    slow = estimate(attempts=9_000_000).warning()
    assert "about 1.0 days (more than a day)" in slow and "(1.0 GB free in" in slow
    big = estimate(images=300_000).warning()
    assert "(more than a day)" not in big and "1.5 GB of disk, more than the 1.0 GB free" in big


def test_durations_and_sizes_read_like_df_and_a_clock():
    assert [format_duration(s) for s in (42, 210, 7200, 3 * 86400, 1e12)] == \
        ["42 s", "3.5 min", "2.0 hours", "3.0 days", "31,688 years"]
    assert [format_bytes(b) for b in (512, 3.2e6, 50e9, 1.2e18)] == \
        ["512 B", "3.2 MB", "50.0 GB", "1,200 PB"]
