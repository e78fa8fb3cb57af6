"""Checking a cron string before it reaches Temporal, for an error that names the field.

The grammar is the one Temporal Schedules accept: 5 fields (minute, hour,
day of month, month, day of week), 6 (… year) or 7 (second first); the
shorthands ``@yearly`` … ``@hourly``; ``@every <duration>[/<phase>]``; an
optional ``CRON_TZ=<zone>`` or ``TZ=<zone>`` prefix and a ``# comment`` suffix.
Each field is a comma list of ``*``, ``n``, ``a-b``, each with an optional
``/step``; months and weekdays may be named (``jan``, ``mon-fri``).

This check is for clear messages only: Temporal parses the string again, and
whatever it still refuses (an unknown time zone, say) is reported as invalid
input too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.platform.errors import InvalidInput

SHORTHANDS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DURATION = r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+"
EVERY = re.compile(rf"^@every\s+{_DURATION}(?:/{_DURATION})?$")
_TOKEN = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[^/]*))?$")


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names for low, low + 1, …

    def value(self, text: str, cron: str) -> int:
        if text.isdigit():
            number = int(text)
        elif self.names and len(text) >= 3 and text[:3].lower() in self.names:
            number = self.names.index(text[:3].lower()) + self.low
        else:
            raise invalid(cron, f"{self.name} has the unknown value {text!r}", self.name)
        if not self.low <= number <= self.high:
            raise invalid(cron, f"{self.name} {number} is not in {self.low}-{self.high}", self.name)
        return number


SECOND = Field("second", 0, 59)
MINUTE = Field("minute", 0, 59)
HOUR = Field("hour", 0, 23)
DAY_OF_MONTH = Field("day of month", 1, 31)
MONTH = Field("month", 1, 12, MONTHS)
DAY_OF_WEEK = Field("day of week", 0, 7, WEEKDAYS)
YEAR = Field("year", 2000, 2100)
LAYOUTS = {
    5: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK),
    6: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR),
    7: (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR),
}


def invalid(cron: str, issue: str, part: str | None = None) -> InvalidInput:
    details = {"field": "cron", "issue": issue, "cron": cron}
    if part:
        details["part"] = part
    return InvalidInput(f"invalid cron {cron!r}: {issue}", details=details)


def _check_field(field: Field, text: str, cron: str) -> None:
    for token in text.split(","):
        match = _TOKEN.match(token)
        if not match:
            raise invalid(cron, f"{field.name} has the malformed part {token!r}", field.name)
        step = match.group("step")
        if step is not None and not (step.isdigit() and int(step) > 0):
            raise invalid(cron, f"{field.name} needs a step of 1 or more after '/'", field.name)
        if match.group("range") == "*":
            continue
        start, _, end = match.group("range").partition("-")
        first = field.value(start, cron)
        if end and field.value(end, cron) < first:
            raise invalid(cron, f"{field.name} range {token!r} ends before it starts", field.name)


def check_cron(cron: str) -> str:
    """The cron string, stripped, if it is well-formed; else ``InvalidInput`` saying why."""
    text = cron.strip()
    body = text.split("#", 1)[0].strip()
    if body.startswith(("CRON_TZ=", "TZ=")):
        zone, _, body = body.partition(" ")
        if not zone.partition("=")[2]:
            raise invalid(cron, "the time zone after TZ= is empty")
        body = body.strip()
    if body.startswith("@"):
        if body.lower() in SHORTHANDS or EVERY.match(body):
            return text
        raise invalid(
            cron,
            f"unknown shorthand {body.split()[0]!r}; use {', '.join(SHORTHANDS)} or "
            "@every <duration> (e.g. @every 15m)",
        )
    fields = body.split()
    layout = LAYOUTS.get(len(fields))
    if layout is None:
        raise invalid(
            cron,
            f"a cron string has 5 fields (minute hour day-of-month month day-of-week), "
            f"6 (… year) or 7 (second first); this one has {len(fields)}",
        )
    for field, part in zip(layout, fields, strict=True):
        _check_field(field, part, cron)
    return text
