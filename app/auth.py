"""Who is calling: a role and a subject, from an API key (see `app/keys/`)."""

from dataclasses import dataclass
from typing import Literal

from app.errors import Forbidden
from app.masking import mask_id

Role = Literal["admin", "borrower", "lender"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject: str
    key_id: str | None = None  # None: the configured admin key, which has no row

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden("forbidden_role", f"this needs the role {' or '.join(roles)}")

    def require_subject(self, subject: str) -> None:
        """Admins act for anyone; others only for themselves."""
        if self.role != "admin" and self.subject != subject:
            raise Forbidden("forbidden_subject", "this belongs to another subject")

    def shown(self, subject: str) -> str:
        """A lender's or borrower's id as this caller may see it: its own and, for an admin,
        everyone's in full; anyone else's masked. Every read that names lenders goes through
        here. O(1)."""
        if self.role == "admin" or subject == self.subject:
            return subject
        return mask_id(subject)
