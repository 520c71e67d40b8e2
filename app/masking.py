"""Lenders do not see each other: other subjects' ids are shown masked (PPDai's `ab***`)."""


def mask_id(subject: str) -> str:
    """The first two characters (one for a short id) and `***`. O(1)."""
    keep = 2 if len(subject) > 3 else 1
    return subject[:keep] + "***"
