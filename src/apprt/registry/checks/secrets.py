"""``secrets``: no credentials shipped in any file of the package.

Every text file (wheels and other binaries are skipped) is searched for:

* private key blocks (``-----BEGIN ... PRIVATE KEY-----``, PGP, OpenSSH);
* AWS access key ids (``AKIA``/``ASIA`` + 16) and secret access keys assigned to a
  name like ``aws_secret_access_key``;
* GitHub tokens (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``,
  ``github_pat_``), Slack tokens (``xox?-``), Google API keys (``AIza``), Stripe
  live keys, apprt API tokens;
* generic assignments of a high-entropy string (Shannon entropy >= 3.5 bits per
  character, at least 20 characters) to a name like ``password``, ``secret``,
  ``token``, ``api_key``, ``private_key``, ``client_secret``.

Any finding fails the upload; the secret itself is never echoed (only its kind,
file and line), since upload results are readable by the publisher's tokens.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, failed, line_of, passed, text_files

NAME = "secrets"

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private key",
        re.compile(
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
        ),
    ),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    (
        "AWS secret access key",
        re.compile(r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}\b"),
    ),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b")),
    ("GitHub token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Stripe live key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{24,}\b")),
    ("apprt API token", re.compile(r"\bapprt_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")),
]

_SENSITIVE_NAMES = (
    r"[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|private[_-]?key|"
    r"access[_-]?key|client[_-]?secret|auth[_-]?key|credentials?)[A-Za-z0-9_.-]*"
)
GENERIC = re.compile(
    rf"(?i)(?P<name>{_SENSITIVE_NAMES})[\"']?\s*(?::=|[:=])\s*[bru]?[\"'](?P<value>[^\"'\s]{{20,}})[\"']"
)
MIN_ENTROPY = 3.5


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def scan_text(path: str, text: str) -> list[Problem]:
    found: list[Problem] = []
    seen: set[tuple[str, int]] = set()

    def add(kind: str, offset: int) -> None:
        line = line_of(text, offset)
        if (kind, line) in seen:
            return
        seen.add((kind, line))
        found.append(
            Problem(
                f"looks like a {kind}",
                file=path,
                location=f"line {line}",
                hint="remove it from the package, revoke it where it was issued, and read "
                "secrets from the app's per-organization config at run time",
            )
        )

    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            add(kind, match.start())
    for match in GENERIC.finditer(text):
        value = match.group("value")
        if entropy(value) >= MIN_ENTROPY:
            add(f"secret assigned to {match.group('name')!r}", match.start())
    return found


def run(ctx: CheckContext) -> CheckOutcome:
    root = ctx.root
    assert root is not None
    files = [(p, t) for p, t in text_files(root) if not p.startswith("wheels/")]
    problems: list[Problem] = []
    for path, text in files:
        problems += scan_text(path, text)
    if problems:
        return failed(f"{len(problems)} possible secret(s)", problems)
    return passed(f"{len(files)} text file(s), no secrets", files=len(files))
