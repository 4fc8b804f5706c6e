"""The dashboard's policy form: what a submitted form asks for, or what is wrong with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from verifyd.errors import InvalidRequest
from verifyd.policy import Policy
from verifyd.policy_schemas import PolicyIn
from verifyd.policystore import from_request
from verifyd.settings import Settings

#: The modes the form offers, in the order it shows them.
MODES = ("phone", "email", "either", "both", "split")


@dataclass(frozen=True)
class FormError(Exception):
    """A form field the policy cannot take, and why (shown beside the field)."""

    field: str
    message: str


def policy_body(form: Mapping[str, str], current: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT /v1/admin/policy`` body a submitted form stands for.

    The form changes the mode, the split's weights, ``prefer`` and the experiment; the
    code and link knobs are kept as they are (a PUT would reset omitted ones).

    Raises:
        FormError: a field the policy cannot take.
    """
    mode = form.get("mode", "")
    if mode not in MODES:
        raise FormError("mode", f"choose one of {', '.join(MODES)}")
    body: dict[str, Any] = {
        "mode": mode,
        "prefer": form.get("prefer") or current.get("prefer"),
        "sms": dict(current["sms"]),
        "email": dict(current["email"]),
    }
    experiment = form.get("experiment", "").strip()
    if experiment:
        body["experiment"] = experiment
    if mode == "split":
        weights = {}
        for arm in ("phone", "email"):
            raw = form.get(f"weight_{arm}", "").strip()
            if not raw.isdigit() or not raw.isascii():
                raise FormError(f"weight_{arm}", "a whole number, 0 or more")
            weights[arm] = int(raw)
        body["weights"] = weights
    try:
        PolicyIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "mode"
        raise FormError(field, first["msg"]) from exc
    return body


def proposed_policy(settings: Settings, body: dict[str, Any]) -> Policy:
    """The policy a form's body proposes.

    Raises:
        FormError: weights that are not a split.
    """
    try:
        return from_request(settings, body)
    except InvalidRequest as exc:
        named = exc.errors[0].field if exc.errors else "mode"
        raise FormError("weight_phone" if named == "weights" else named, exc.detail) from exc
