"""Resource limits applied when building, reading and extracting packages.

Every archive is untrusted until proven otherwise, so the reader enforces these
limits *while streaming*: a member that claims to be too big is refused from its
header, before a byte of it is inflated, and a compression bomb is stopped as soon
as the inflated output outgrows the compressed input by more than
``max_compression_ratio`` (once at least ``ratio_floor`` bytes were inflated, so
that tiny archives full of tar padding are not mistaken for bombs).

The builder applies the same limits, so ``apprt app pack`` never produces a package
that the registry or an installer would refuse::

    >>> from apprt.package import DEFAULT_LIMITS, PackageLimits
    >>> DEFAULT_LIMITS.max_member_size // 2**20
    64
    >>> strict = PackageLimits(max_total_size=16 * 2**20, max_members=500)
    >>> strict.max_members
    500
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DEFAULT_LIMITS", "MiB", "PackageLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackageLimits:
    """Upper bounds on what a package may contain.

    Attributes:
        max_member_size: largest single file, in bytes (uncompressed).
        max_total_size: sum of all file sizes, in bytes (uncompressed).
        max_members: number of archive members, ``MANIFEST`` and ``SIGNATURE`` included.
        max_compression_ratio: inflated bytes of the whole tar stream (headers and
            padding included) per compressed byte, checked continuously while reading.
        ratio_floor: the ratio is only enforced once this many bytes were inflated.
        max_path_length: longest member path, in UTF-8 bytes.
        max_path_depth: most ``/``-separated components in a member path.
        max_metadata_size: largest ``MANIFEST``, ``SIGNATURE`` or ``app.toml``; these
            three are the only members ever held in memory.
    """

    max_member_size: int = 64 * MiB
    max_total_size: int = 256 * MiB
    max_members: int = 10_000
    max_compression_ratio: float = 100.0
    ratio_floor: int = 1 * MiB
    max_path_length: int = 255
    max_path_depth: int = 32
    max_metadata_size: int = 4 * MiB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"PackageLimits.{f.name} must be a positive number, not {value!r}")

    @property
    def max_stream_size(self) -> int:
        """Most bytes the inflated tar stream may hold: file data plus header overhead.

        Each member costs at most a header block, a small extended (PAX) header and
        padding; 2 KiB per member plus 1 MiB of slack bounds that generously.
        """
        return self.max_total_size + self.max_members * 2048 + MiB


DEFAULT_LIMITS = PackageLimits()
