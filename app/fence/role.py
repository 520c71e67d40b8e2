"""What this instance is right now, as the edge (/readyz, the standby guard) shows it."""

import asyncio
from typing import Literal

State = Literal["starting", "standby", "database_unavailable", "recovering", "writer"]


class Role:
    def __init__(self) -> None:
        self.state: State = "starting"
        #: Set once the first start has an outcome: the writer, or waiting as a standby.
        self.settled = asyncio.Event()

    @property
    def writer(self) -> bool:
        return self.state == "writer"

    @property
    def code(self) -> str:
        """The problem `code` a request gets while this instance is not the writer: `standby`
        sends the client (or the router) to the other instance; rebuilding the books or losing
        Postgres is the same temporary `database_unavailable` a lone instance gives."""
        return "standby" if self.state in ("starting", "standby") else "database_unavailable"

    def set(self, state: State) -> None:
        self.state = state
        if state != "starting" and state != "recovering":
            self.settled.set()
