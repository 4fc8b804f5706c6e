"""Real-looking phone numbers, email addresses and client addresses for the demo's people.

Nothing sent to them leaves the demo's private server: its only provider is the sandbox,
which keeps every message in its inbox. They are drawn to look like a real signup mix
(and to raise the suspect signals a real one would), never to reach anybody.
"""

from __future__ import annotations

import ipaddress
import random
import re
import string

import phonenumbers
from phonenumbers import PhoneNumberType

from verifyd.aliases import alias_key
from verifyd.destinations import BUILTIN_SANDBOX_PATTERNS

#: Where genuine people's numbers come from (share), and how a mobile number there starts.
#: Each draw is checked with phonenumbers; a number of another type is drawn again.
COUNTRIES: dict[str, tuple[float, tuple[str, ...], int]] = {
    "GB": (0.35, ("+447",), 9),
    "US": (0.25, ("+1",), 10),  # NANP numbers are FIXED_LINE_OR_MOBILE: both reach a phone
    "DE": (0.15, ("+4915", "+4916", "+4917"), 9),
    "FR": (0.10, ("+336", "+337"), 8),
    "IN": (0.15, ("+916", "+917", "+918", "+919"), 9),
}
_REACHES_A_PHONE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
#: UK VoIP numbers (phonenumbers types +44 56 as VOIP): cheap to buy by the thousand.
VOIP_PREFIX = "+4456"
#: UK mobiles bought in bulk: one block of 1,000 consecutive numbers at a time.
BULK_MOBILE_PREFIX = "+447"
_UK_E164_LENGTH = 13  # +44 and ten digits
_SANDBOX = [re.compile(p) for p in BUILTIN_SANDBOX_PATTERNS]

FIRST_NAMES = (
    "olivia", "james", "amelia", "oliver", "isla", "harry", "emily", "jack", "sophie",
    "noah", "emma", "liam", "mia", "lucas", "anna", "leon", "lea", "paul", "marie", "hugo",
    "chloe", "louis", "ines", "arjun", "priya", "rahul", "ananya", "vikram", "sara", "omar",
    "fatima", "daniel", "grace", "ethan", "zoe", "ben", "lena", "felix", "clara", "max",
)  # fmt: skip
LAST_NAMES = (
    "smith", "jones", "taylor", "brown", "wilson", "evans", "johnson", "miller", "davis",
    "garcia", "martinez", "muller", "schmidt", "schneider", "fischer", "weber", "martin",
    "bernard", "dubois", "durand", "leroy", "moreau", "sharma", "patel", "gupta", "singh",
    "kumar", "iyer", "khan", "walker", "wright", "green", "hall", "wood", "clarke",
)  # fmt: skip
#: Mailbox providers and company domains of genuine people (weights). None is disposable.
EMAIL_DOMAINS = {
    "gmail.com": 32, "outlook.com": 9, "hotmail.co.uk": 5, "yahoo.com": 7, "icloud.com": 8,
    "gmx.de": 5, "web.de": 4, "orange.fr": 4, "proton.me": 3, "rediffmail.com": 3,
    # Microsoft's fictional companies: real-looking work addresses that belong to no one.
    "contoso.com": 6, "fabrikam.com": 5, "northwindtraders.com": 4, "adventure-works.com": 3,
    "wingtiptoys.com": 2,
}  # fmt: skip
#: Disposable domains on the disposable-email-domains package's list.
DISPOSABLE_DOMAINS = (
    "mailinator.com", "guerrillamail.com", "yopmail.com", "sharklasers.com", "10minutemail.com",
    "maildrop.cc", "trashmail.com", "dispostable.com",
)  # fmt: skip


class Identities:
    """Draws destinations no one else in the run has (nor, likely, any earlier run).

    Args:
        rng: The draws of digits, names and addresses.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._taken: set[str] = set()
        self._blocks: dict[str, tuple[str, int]] = {}

    def _fresh(self, value: str) -> bool:
        if value in self._taken:
            return False
        self._taken.add(value)
        return True

    def _digits(self, n: int) -> str:
        return "".join(self._rng.choice(string.digits) for _ in range(n))

    def mobile(self, country: str) -> str:
        """A valid number of ``country`` that reaches a phone (E.164), unseen in this run."""
        _, prefixes, length = COUNTRIES[country]
        while True:
            number = self._rng.choice(prefixes) + self._digits(length)
            if country == "US" and number[5:8] == "555":
                continue  # 555 numbers are fictional (and some are sandbox destinations)
            if _number_type(number) in _REACHES_A_PHONE and self._fresh(number):
                return number

    def in_block(self, farm: str) -> str:
        """The next number of a bulk-bought block: consecutive numbers sharing a prefix.

        Args:
            farm: ``voip`` (UK VoIP numbers) or ``mobile`` (UK mobiles).
        """
        prefix, wanted = (
            (VOIP_PREFIX, PhoneNumberType.VOIP)
            if farm == "voip"
            else (BULK_MOBILE_PREFIX, PhoneNumberType.MOBILE)
        )
        while True:
            block, n = self._blocks.get(farm, ("", 1000))
            if n >= 1000:  # a new block: all but the last three digits
                block = prefix + self._digits(_UK_E164_LENGTH - 3 - len(prefix))
                n = self._rng.randrange(100)
            self._blocks[farm] = (block, n + 1)
            number = f"{block}{n:03d}"
            if _number_type(number) == wanted and self._fresh(number):
                return number
            self._blocks[farm] = (block, 1000)  # an unusable block: buy another

    def personal_email(self) -> str:
        """A real-looking address at a common provider or a company, one mailbox each."""
        domains = list(EMAIL_DOMAINS)
        while True:
            first, last = self._rng.choice(FIRST_NAMES), self._rng.choice(LAST_NAMES)
            local = self._rng.choice(
                (
                    f"{first}.{last}",
                    f"{first}{last}",
                    f"{first[0]}.{last}",
                    f"{first}_{last}",
                    f"{first}.{last}{self._rng.randrange(1, 99)}",
                    f"{first}{self._rng.randrange(1960, 2008)}",
                    f"{first[0]}{last}{self._rng.randrange(10, 999)}",
                )
            )
            domain = self._rng.choices(domains, weights=list(EMAIL_DOMAINS.values()))[0]
            address = f"{local}@{domain}"
            # One mailbox per person: two spellings of one would raise email_alias.
            if self._fresh(alias_key(address)) and self._fresh(address):
                return address

    def disposable_email(self) -> str:
        """An address at a disposable domain."""
        while True:
            local = "".join(self._rng.choice(string.ascii_lowercase) for _ in range(6))
            address = f"{local}{self._digits(3)}@{self._rng.choice(DISPOSABLE_DOMAINS)}"
            if self._fresh(address):
                return address

    def gmail_alias(self, mailbox: str) -> str:
        """A new spelling of a Gmail mailbox: dots where Gmail ignores them, or a ``+tag``."""
        while True:
            chars = list(mailbox)
            for at in sorted(self._rng.sample(range(1, len(chars)), self._rng.randint(0, 2))):
                chars[at] = "." + chars[at]
            local = "".join(chars)
            if self._rng.random() < 0.5:
                local += "+" + "".join(self._rng.choice(string.ascii_lowercase) for _ in range(4))
            address = f"{local}@gmail.com"
            if self._fresh(address):
                return address

    def mailbox(self) -> str:
        """The local part of a mailbox a bot farm signs up under again and again."""
        while True:
            name = self._rng.choice(FIRST_NAMES) + self._rng.choice(LAST_NAMES) + self._digits(2)
            if self._fresh(f"mailbox:{name}"):
                return name

    def address(self, network: str) -> str:
        """A client address in ``network`` no one else in the run has."""
        net = ipaddress.ip_network(network)
        while True:
            host = str(net[self._rng.randrange(1, net.num_addresses - 1)])
            if self._fresh(host):
                return host

    def subject(self) -> str:
        """An opaque device id, as a frontend keeps one."""
        alphabet = string.ascii_letters + string.digits
        return "dev_" + "".join(self._rng.choice(alphabet) for _ in range(22))


def _number_type(number: str) -> int | None:
    if any(p.search(number) for p in _SANDBOX):
        return None
    parsed = phonenumbers.parse(number)
    if not phonenumbers.is_valid_number(parsed):
        return None
    kind: int = phonenumbers.number_type(parsed)
    return kind
