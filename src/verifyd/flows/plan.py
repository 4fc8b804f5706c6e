"""What a signup verifies: the arm's requirement against the identities the request gives."""

from __future__ import annotations

from dataclasses import dataclass

from verifyd.channels.base import Channel
from verifyd.errors import FieldError, InvalidRequest, PolicyRequires
from verifyd.policy import Mode, Policy


@dataclass(frozen=True)
class Plan:
    """What an account needs verified, and which of it is verified now."""

    needs: list[str]
    needs_all: bool
    verify_now: list[str]


class Planner:
    """Reads a signup's identities and ``channel`` against the policy.

    Args:
        by_identity: The channel that verifies each identity (``phone``, ``email``).
    """

    def __init__(self, by_identity: dict[str, Channel]) -> None:
        # A channel's name or an identity's: ``sms`` and ``phone`` both mean the phone.
        self._spellings = {identity: identity for identity in by_identity}
        self._spellings.update({ch.name: identity for identity, ch in by_identity.items()})

    def named(self, channel: str | None) -> str | None:
        """The identity a ``channel`` value names, checked whatever the policy.

        Raises:
            InvalidRequest: ``invalid_request`` on ``channel``, listing every spelling
                that is accepted.
        """
        if channel is None:
            return None
        if channel not in self._spellings:
            raise InvalidRequest.field(
                "invalid_request",
                "channel",
                "channel must be one of " + ", ".join(sorted(self._spellings)),
            )
        return self._spellings[channel]

    def plan(self, policy: Policy, arm: Mode, given: dict[str, bool], channel: str | None) -> Plan:
        """Which identities the account needs, whether all of them, and which to verify now.

        Raises:
            PolicyRequires: an identity the arm needs is missing.
            InvalidRequest: under ``either``, ``channel`` names an identity not given.
        """
        requirement = policy.requirement(arm)
        missing = [i for i in requirement.require if not given[i]]
        if missing:
            code = (
                "policy_requires_both"
                if len(requirement.require) == 2
                else (f"policy_requires_{missing[0]}")
            )
            raise PolicyRequires(
                code,
                f"the verification policy needs {' and '.join(requirement.require)}",
                errors=[FieldError(i, code, f"{i} is required") for i in missing],
            )
        if requirement.require:
            return Plan(list(requirement.require), True, list(requirement.require))
        # one_of: verify the one given; with both, `channel` picks, else the preference
        offered = [i for i in requirement.one_of if given[i]]
        if not offered:
            code = "policy_requires_phone_or_email"
            raise PolicyRequires(
                code,
                "the verification policy needs a phone or an email",
                errors=[
                    FieldError(i, code, "phone or email is required") for i in ("phone", "email")
                ],
            )
        named = self.named(channel)
        if named is not None and named not in offered:
            raise InvalidRequest.field(
                "invalid_request",
                "channel",
                f"channel {channel} verifies a {named}, and the signup gives no {named}",
            )
        pick = named or (offered[0] if len(offered) == 1 else policy.prefer)
        return Plan(list(requirement.one_of), False, [pick])
