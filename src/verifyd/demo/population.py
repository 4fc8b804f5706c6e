"""The demo's synthetic population: genuine people and a bot farm, and what each will do.

The seed fixes the population: who is genuine and who a bot, when each arrives, which
country or kind of destination each uses, and every choice each makes once the service
has assigned an arm. The digits of numbers, the names in addresses, the client addresses
and subjects are drawn fresh for every run (from the seed and the run's start), so a
second run on the same database meets none of the first's accounts, rate-limit windows
or velocity counts.

Times are compressed: the demo's seconds stand for a real user's minutes. The rates
below are plausible figures, not measurements; they are written down so the comparison
the service computes from them can be checked against them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

from verifyd.demo.identities import COUNTRIES, Identities

#: Share of the population that is the bot farm.
BOT_SHARE = 1 / 3
#: Seconds over which people arrive (the shortened stand-in for a day of traffic).
ARRIVAL_SECONDS = 18.0
#: The bot farm's scripts run in bursts of this many seconds, this many times.
BOT_BURSTS, BURST_SECONDS = 4, 3.0
#: Those who will ask for a new code arrive early: their wait for the cooldown fits the run.
RESENDER_ARRIVAL_SECONDS = 6.0

# Genuine people, per arm.
#: Saw the form and never submitted it: a phone number is the bigger ask.
LEAVES_FORM = {"phone": 0.30, "email": 0.12}
#: Signed up and never verified: an email sits unread or in spam more often than an SMS.
DROPS_OFF = {"phone": 0.08, "email": 0.20}
#: Seconds from signup to using the code or link (log-normal: median, spread, cap).
#: An SMS arrives on the phone in hand; an email waits for the inbox to be opened.
DELAY = {"phone": (4.0, 0.5, 18.0), "email": (9.0, 0.8, 25.0)}
#: Of those who verify by SMS: mistype the code once first.
WRONG_CODE_FIRST = 0.10
#: Ask for a new code or link (after the cooldown), then use the new one.
RESENDS = 0.06
#: Of the email drop-offs: open the link's page and never press its button.
OPENS_ONLY = 0.25

# The bot farm, per arm.
#: Bots that verify: a script rarely holds the SIM behind a bulk number; a disposable
#: inbox is readable by anyone, so far more of the email bots get through.
BOT_VERIFIES = {"phone": 0.03, "email": 0.30}
#: A script's delay, uniform in seconds.
BOT_DELAY = (0.5, 2.0)
#: The farm's client addresses: few, so each signs up many times (``velocity_ip``).
BOT_ADDRESSES = 4
#: Its phones: VoIP numbers, or consecutive mobile numbers of one block; both bought in
#: bulk, so consecutive (``velocity_prefix``).
BOT_VOIP = 0.5
#: Its emails: disposable domains, or Gmail aliases of a few mailboxes (``email_alias``).
BOT_DISPOSABLE = 0.6
BOT_MAILBOXES = 3

#: Genuine people's client addresses (each has its own); the farm's (a hosting range).
GENUINE_NETWORK, BOT_NETWORK = "10.0.0.0/8", "198.18.0.0/15"


@dataclass(frozen=True)
class Plan:
    """What one person does once the service has assigned an arm.

    Attributes:
        submits: Sends the signup form (else only saw it).
        verifies: Uses the code or link (else drops off after signing up).
        delay: Seconds from signup to using the code or link (or asking for a new one).
        wrong_first: Types a wrong code before the right one (SMS).
        opens_only: Opens the link's page and never confirms (email drop-offs).
        retype: Seconds between a wrong code and the right one, or a resend and its use.
    """

    submits: bool
    verifies: bool
    delay: float
    wrong_first: bool
    opens_only: bool
    retype: float


@dataclass(frozen=True)
class Person:
    """One member of the population.

    Attributes:
        index: Position in the population.
        bot: Part of the bot farm.
        arrives_at: Seconds after the first arrival.
        subject: The device id sent with the policy read and the signup.
        address: The client address (sent as ``X-Forwarded-For``).
        phone: The number given if the arm is phone.
        email: The address given if the arm is email.
        resends: Asks for a new code or link before using one.
        seed: Draws the person's :class:`Plan`.
    """

    index: int
    bot: bool
    arrives_at: float
    subject: str
    address: str
    phone: str
    email: str
    resends: bool
    seed: int

    def plan(self, arm: str) -> Plan:
        """What this person does when asked for a ``phone`` or an ``email`` (same draws)."""
        rng = random.Random(self.seed)
        u_submit, u_verify, u_delay, u_wrong, u_open, u_retype = (rng.random() for _ in range(6))
        if self.bot:
            low, high = BOT_DELAY
            return Plan(
                submits=True,
                verifies=u_verify < BOT_VERIFIES[arm],
                delay=low + (high - low) * u_delay,
                wrong_first=False,
                opens_only=False,
                retype=0.5,
            )
        verifies = u_verify >= DROPS_OFF[arm]
        return Plan(
            submits=u_submit >= LEAVES_FORM[arm],
            verifies=verifies,
            delay=_log_normal(u_delay, *DELAY[arm]),
            wrong_first=arm == "phone" and u_wrong < WRONG_CODE_FIRST,
            opens_only=arm == "email" and not verifies and u_open < OPENS_ONLY,
            retype=1.0 + 2.0 * u_retype,
        )


def population(people: int, seed: int, run: str) -> list[Person]:
    """The population of a run, ordered by arrival.

    Args:
        people: How many, genuine and bots together.
        seed: Fixes who everyone is and what they do.
        run: Varies the digits, names and addresses from one run to the next.

    Returns:
        The people, first arrival first.
    """
    rng = random.Random(seed)
    ids = Identities(random.Random(f"{seed}:{run}"))
    bots = round(people * BOT_SHARE)
    farm_addresses = [ids.address(BOT_NETWORK) for _ in range(BOT_ADDRESSES)]
    mailboxes = [ids.mailbox() for _ in range(BOT_MAILBOXES)]
    bursts = [rng.uniform(0, ARRIVAL_SECONDS - BURST_SECONDS) for _ in range(BOT_BURSTS)]
    countries = list(COUNTRIES)
    shares = [COUNTRIES[c][0] for c in countries]
    crowd = []
    for index in range(people):
        bot = index < bots
        if bot:
            arrives = rng.choice(bursts) + rng.uniform(0, BURST_SECONDS)
            resends = False
            address = rng.choice(farm_addresses)
            phone = ids.in_block("voip" if rng.random() < BOT_VOIP else "mobile")
            if rng.random() < BOT_DISPOSABLE:
                email = ids.disposable_email()
            else:
                email = ids.gmail_alias(rng.choice(mailboxes))
        else:
            resends = rng.random() < RESENDS
            arrives = rng.uniform(0, RESENDER_ARRIVAL_SECONDS if resends else ARRIVAL_SECONDS)
            address = ids.address(GENUINE_NETWORK)
            phone = ids.mobile(rng.choices(countries, weights=shares)[0])
            email = ids.personal_email()
        crowd.append(
            Person(
                index=index,
                bot=bot,
                arrives_at=arrives,
                subject=ids.subject(),
                address=address,
                phone=phone,
                email=email,
                resends=resends,
                seed=rng.getrandbits(64),
            )
        )
    return sorted(crowd, key=lambda p: p.arrives_at)


def _log_normal(u: float, median: float, spread: float, cap: float) -> float:
    """The ``u`` quantile of a log-normal delay truncated at ``cap`` (no pile-up at the cap)."""
    normal = NormalDist()
    top = normal.cdf(math.log(cap / median) / spread)
    return median * math.exp(spread * normal.inv_cdf(max(u, 1e-9) * top))
