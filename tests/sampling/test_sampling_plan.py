"""Quotas from --classes / --per-class / --num / --class-ratio (hvitgan_tf.sampling.plan)."""
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.sampling.plan import default_max_attempts, plan_quotas, split_by_ratio

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
