"""Who is asking: an organization and a role, from an API key or the local CLI."""

from __future__ import annotations

from dataclasses import dataclass

from podium.errors import Forbidden

ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True)
class Actor:
    """The caller of a service function; every object it can see is in its organization
    (or ``global`` for shared definitions)."""

    organization: str
    role: str
    name: str
    key_id: str | None = None

    def require(self, role: str, action: str) -> None:
        """Raise :class:`Forbidden` unless this actor's role is at least ``role``."""
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            raise Forbidden(f"a {self.role} key cannot {action}: it needs the {role} role")

    @classmethod
    def local(cls, organization: str) -> Actor:
        """The operator at this machine's command line: full rights in ``organization``."""
        return cls(organization=organization, role="admin", name="cli")
