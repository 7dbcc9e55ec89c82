"""The CVSS v3 base score from its vector, as the FIRST specification computes it (3.0 and 3.1).

Advisories carry the vector (`CVSS:3.1/AV:N/AC:L/...`); the score and the severity the fix time
depends on are worked out here, so a mirror that holds only vectors rates as well as one that holds
scores. Pure: no I/O.
"""

from __future__ import annotations

import math

WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
BASE = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


class CvssError(ValueError):
    """The vector is not a CVSS v3 vector with every base metric."""


def parse(vector: str) -> tuple[str, dict[str, str]]:
    """The version ("3.0" or "3.1") and the base metrics of `vector`."""
    head, _, rest = vector.strip().partition("/")
    if head not in ("CVSS:3.0", "CVSS:3.1"):
        raise CvssError(f"{vector!r} is not a CVSS v3 vector (it starts with CVSS:3.0/ or CVSS:3.1/)")
    metrics: dict[str, str] = {}
    for part in rest.split("/"):
        name, _, value = part.partition(":")
        if name in metrics:
            raise CvssError(f"{vector!r} names {name} twice")
        metrics[name] = value
    missing = [m for m in BASE if m not in metrics]
    if missing:
        raise CvssError(f"{vector!r} lacks {', '.join(missing)}")
    if metrics["S"] not in ("U", "C"):
        raise CvssError(f"{vector!r}: S must be U or C")
    for name, table in (*WEIGHTS.items(), ("PR", PRIVILEGES["U"])):
        if metrics[name] not in table:
            raise CvssError(f"{vector!r}: {name}:{metrics[name]} is not a value of {name}")
    return head.removeprefix("CVSS:"), metrics


def roundup(value: float, version: str = "3.1") -> float:
    """The specification's round up to one decimal; 3.1's works on integers to avoid float noise."""
    if version == "3.0":
        return math.ceil(value * 10) / 10
    whole = round(value * 100000)
    if whole % 10000 == 0:
        return whole / 100000.0
    return (math.floor(whole / 10000) + 1) / 10.0


def base_score(vector: str) -> float:
    """The base score, 0.0 to 10.0, of a CVSS v3.0 or v3.1 vector."""
    version, m = parse(vector)
    changed = m["S"] == "C"
    iss = 1 - (1 - WEIGHTS["C"][m["C"]]) * (1 - WEIGHTS["I"][m["I"]]) * (1 - WEIGHTS["A"][m["A"]])
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = (8.22 * WEIGHTS["AV"][m["AV"]] * WEIGHTS["AC"][m["AC"]]
                      * PRIVILEGES[m["S"]][m["PR"]] * WEIGHTS["UI"][m["UI"]])
    if impact <= 0:
        return 0.0
    total = 1.08 * (impact + exploitability) if changed else impact + exploitability
    return roundup(min(total, 10.0), version)
