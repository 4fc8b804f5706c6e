"""Unit tests of verifyd.policy: requirements, split assignment, weights, versioning."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from verifyd.policy import Policy, SmsKnobs, next_version, validate_weights
from verifyd.settings import Settings
from verifyd.slidinglimit import Bounds

SUBJECTS = [f"device-{i}" for i in range(4000)]


def reference_arm(salt: str, subject: str, weights: dict[str, int]) -> str:
    """docs/policies.md's rule, written independently: sha256(salt ‖ subject)[:8] mod 10000."""
    bucket = int.from_bytes(hashlib.sha256((salt + subject).encode()).digest()[:8], "big") % 10000
    total = weights["phone"] + weights["email"]
    return "phone" if bucket < weights["phone"] * 10000 / total else "email"


def split(weights: dict[str, int], salt: str = "salt-a", experiment: str = "exp_a") -> Policy:
    return Policy(mode="split", version=3, weights=weights, experiment=experiment, salt=salt)


@pytest.mark.parametrize(
    ("arm", "require", "one_of"),
    [
        ("phone", ("phone",), ()),
        ("email", ("email",), ()),
        ("both", ("phone", "email"), ()),
        ("either", (), ("phone", "email")),
    ],
)
def test_requirement_per_mode(arm: str, require: tuple[str, ...], one_of: tuple[str, ...]) -> None:
    req = Policy.requirement(arm)  # type: ignore[arg-type]
    assert (req.require, req.one_of) == (require, one_of)


def test_split_is_not_an_arm() -> None:
    with pytest.raises(ValueError):
        Policy.requirement("split")


@pytest.mark.parametrize("mode", ["phone", "email", "either", "both"])
def test_non_split_arm_is_the_mode(mode: str) -> None:
    policy = Policy(mode=mode)  # type: ignore[arg-type]
    assert policy.arm_for("anything") == mode
    assert policy.arm_for(None) == mode


@pytest.mark.parametrize(
    "weights",
    [{"phone": 50, "email": 50}, {"phone": 30, "email": 70}, {"phone": 1, "email": 999}],
)
def test_split_follows_the_documented_bucket_rule(weights: dict[str, int]) -> None:
    policy = split(weights)
    for subject in SUBJECTS[:1000]:
        assert policy.arm_for(subject) == reference_arm("salt-a", subject, weights), subject


def test_split_is_deterministic_per_subject() -> None:
    policy = split({"phone": 50, "email": 50})
    again = split({"phone": 50, "email": 50})
    assert [policy.arm_for(s) for s in SUBJECTS[:200]] == [again.arm_for(s) for s in SUBJECTS[:200]]


@pytest.mark.parametrize(
    ("weights", "only"),
    [({"phone": 100, "email": 0}, "phone"), ({"phone": 0, "email": 100}, "email")],
)
def test_zero_weight_arm_gets_nobody(weights: dict[str, int], only: str) -> None:
    policy = split(weights)
    assert {policy.arm_for(s) for s in SUBJECTS} == {only}
    assert {policy.arm_for(None) for _ in range(200)} == {only}


@pytest.mark.parametrize(("phone", "email"), [(50, 50), (20, 80), (3, 1)])
def test_split_shares_follow_weights(phone: int, email: int) -> None:
    policy = split({"phone": phone, "email": email})
    share = sum(policy.arm_for(s) == "phone" for s in SUBJECTS) / len(SUBJECTS)
    assert abs(share - phone / (phone + email)) < 0.03


def test_without_subject_the_arm_is_random() -> None:
    policy = split({"phone": 50, "email": 50})
    arms = [policy.arm_for(None) for _ in range(400)]
    assert 0.4 < arms.count("phone") / len(arms) < 0.6


def test_editing_weights_moves_only_subjects_near_the_boundary() -> None:
    before = split({"phone": 50, "email": 50})
    after = replace(before, weights={"phone": 60, "email": 40})
    moved = [s for s in SUBJECTS if before.arm_for(s) != after.arm_for(s)]
    assert 0.07 < len(moved) / len(SUBJECTS) < 0.13
    # Only email → phone moves: growing the phone share takes from the boundary.
    assert all(before.arm_for(s) == "email" and after.arm_for(s) == "phone" for s in moved)


def test_another_salt_reassigns() -> None:
    a = split({"phone": 50, "email": 50}, salt="salt-a")
    b = split({"phone": 50, "email": 50}, salt="salt-b")
    same = sum(a.arm_for(s) == b.arm_for(s) for s in SUBJECTS) / len(SUBJECTS)
    assert 0.4 < same < 0.6


def test_validate_weights_fills_missing_arm_with_zero() -> None:
    assert validate_weights({"phone": 7}) == {"phone": 7, "email": 0}


@pytest.mark.parametrize(
    "weights",
    [
        {"phone": 0, "email": 0},
        {},
        {"phone": -1, "email": 5},
        {"phone": 1.5, "email": 5},
        {"phone": True, "email": 5},
        {"phone": "50", "email": 50},
        {"phone": 50, "sms": 50},
        {"phone": 10**400, "email": 1},
    ],
)
def test_validate_weights_refuses(weights: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        validate_weights(weights)


# ---------------------------------------------------------------- versions


def proposed_split(weights: dict[str, int], experiment: str | None = "exp_a") -> Policy:
    return Policy(mode="split", weights=weights, experiment=experiment)


def test_first_version_is_one() -> None:
    first = next_version(None, Policy(mode="phone"), salt_of={})
    assert first is not None and first.version == 1


def test_identical_document_creates_no_version() -> None:
    current = next_version(None, proposed_split({"phone": 50, "email": 50}), salt_of={})
    assert current is not None
    assert next_version(current, proposed_split({"phone": 50, "email": 50}), salt_of={}) is None


def test_editing_weights_keeps_the_salt() -> None:
    current = next_version(None, proposed_split({"phone": 50, "email": 50}), salt_of={})
    assert current is not None and current.salt
    edited = next_version(current, proposed_split({"phone": 70, "email": 30}), salt_of={})
    assert edited is not None
    assert (edited.version, edited.salt, edited.experiment) == (2, current.salt, "exp_a")


def test_split_without_a_name_continues_the_running_experiment() -> None:
    current = next_version(None, proposed_split({"phone": 50, "email": 50}), salt_of={})
    assert current is not None
    edited = next_version(current, proposed_split({"phone": 10, "email": 90}, None), salt_of={})
    assert edited is not None
    assert (edited.experiment, edited.salt) == ("exp_a", current.salt)


def test_a_new_experiment_draws_a_new_salt() -> None:
    current = next_version(None, proposed_split({"phone": 50, "email": 50}), salt_of={})
    assert current is not None
    new = next_version(current, proposed_split({"phone": 50, "email": 50}, "exp_b"), salt_of={})
    assert new is not None
    assert new.experiment == "exp_b" and new.salt and new.salt != current.salt


def test_naming_an_earlier_experiment_resumes_its_salt() -> None:
    a = next_version(None, proposed_split({"phone": 50, "email": 50}), salt_of={})
    assert a is not None
    b = next_version(a, proposed_split({"phone": 50, "email": 50}, "exp_b"), salt_of={})
    assert b is not None
    back = next_version(
        b, proposed_split({"phone": 50, "email": 50}), salt_of={"exp_a": a.salt, "exp_b": b.salt}
    )
    assert back is not None and back.salt == a.salt


def test_leaving_split_drops_weights_and_experiment() -> None:
    current = next_version(None, proposed_split({"phone": 50, "email": 50}), salt_of={})
    assert current is not None
    new = next_version(current, Policy(mode="email", weights={"phone": 1}), salt_of={})
    assert new is not None
    assert (new.mode, new.weights, new.experiment, new.version) == ("email", None, None, 2)


def test_knob_change_is_a_new_version() -> None:
    current = next_version(None, Policy(mode="phone"), salt_of={})
    assert current is not None
    new = next_version(current, Policy(mode="phone", sms=SmsKnobs(code_length=6)), salt_of={})
    assert new is not None and new.version == 2 and new.sms.code_length == 6


def test_document_matches_design_and_hides_the_salt() -> None:
    policy = split({"phone": 50, "email": 50}, salt="very-secret-salt")
    doc = policy.document(Bounds.of(Settings()))
    assert set(doc) == {
        "version",
        "mode",
        "weights",
        "prefer",
        "experiment",
        "sms",
        "email",
        "guess_bound",
        "guess_limit",
        "send_limit",
        "changed_at",
        "changed_by",
    }
    assert doc["sms"] == {
        "code_length": 4,
        "ttl_seconds": 600,
        "max_checks": 5,
        "resend_cooldown_seconds": 30,
    }
    assert doc["email"] == {"ttl_seconds": 86400}
    # 10 free guesses, then 300 s doubling to 4 h: 10 more in any 24 h, 20 in all
    assert doc["guess_bound"] == "1 in 500 per destination per day"
    assert doc["guess_limit"] == {
        "per_day": 20,
        "free": 10,
        "window_seconds": 86400,
        "backoff_base_seconds": 300,
        "backoff_cap_seconds": 14400,
        "longest_owner_lockout_seconds": 14400,
    }
    # 5 free sends, then 60 s doubling to 15 min: 6 more in any hour, 11 in all
    assert doc["send_limit"] == {
        "per_hour": 11,
        "free": 5,
        "window_seconds": 3600,
        "backoff_base_seconds": 60,
        "backoff_cap_seconds": 900,
        "longest_owner_lockout_seconds": 900,
    }
    assert "very-secret-salt" not in repr(doc)


def test_stored_document_round_trips() -> None:
    policy = split({"phone": 20, "email": 80}, salt="s1")
    back = Policy.from_stored(policy.version, policy.stored(), "s1", datetime.now(UTC), "x")
    assert back.knobs() == policy.knobs()
    assert [back.arm_for(s) for s in SUBJECTS[:200]] == [policy.arm_for(s) for s in SUBJECTS[:200]]
