"""The batch-of-bids statement on a non-blocking libpq connection (psycopg's `pq` module).

asyncpg hands a reply to its caller on a later turn of the event loop, after the requests
already queued for that turn: on a busy loop a commit waited there ~1 ms, a third of the
commit cycle, with Postgres idle (BENCHMARKS.md, issue 14 fourth pass). The writer instead asks
this connection whether its statement is done each time the loop hands the writer an entry,
and when the socket turns readable, so it learns of a commit at once (the next batch leaves
once the loop has run the requests that commit woke).

Only `APPEND` runs here, one statement at a time, in autocommit: its reply means committed.
"""

import psycopg
from psycopg import errors, pq
from psycopg.conninfo import make_conninfo

from app.journal.statements import APPEND, SESSION, Session

_STATEMENT = b"journal_append"


class AppendLane:
    """One libpq connection with `APPEND` prepared. Not thread-safe: the event loop's only."""

    def __init__(self, conn: pq.abc.PGconn, session: Session) -> None:
        self._conn = conn
        #: The socket's descriptor, kept: libpq reports none once the connection is lost, and
        #: the event loop's reader (and writer) must still be removed then.
        self.socket = int(conn.socket)
        #: The server session, kept: a statement it may still run after the lane gave up on it
        #: is ended through it (`recovery.end_sessions`).
        self.backend_pid, self.backend_start = session
        self._results: list[pq.abc.PGresult] = []

    @classmethod
    def open(cls, uri: str, application_name: str, timeout_s: float) -> "AppendLane":
        """Connect and prepare the statement. Blocks: run it in an executor."""
        conninfo = make_conninfo(  # UTF-8 as asyncpg's: libpq's default follows PGCLIENTENCODING
            uri, application_name=application_name, connect_timeout=max(1, round(timeout_s)),
            client_encoding="UTF8",
        )
        conn = pq.PGconn.connect(conninfo.encode())
        try:
            if conn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError(conn.get_error_message())
            prepared = conn.prepare(_STATEMENT, APPEND.encode())
            if prepared.status != pq.ExecStatus.COMMAND_OK:
                raise errors.error_from_result(prepared)
            found = conn.exec_(SESSION.encode())
            if found.status != pq.ExecStatus.TUPLES_OK:
                raise errors.error_from_result(found)
            pid, started = found.get_value(0, 0), found.get_value(0, 1)
            if pid is None or started is None:
                raise psycopg.InterfaceError("the session's own activity row is missing")
            session = int(pid), int(started)
            conn.nonblocking = 1
        except BaseException:
            conn.finish()
            raise
        return cls(conn, session)

    def send(self, params: list[bytes | None]) -> bool:
        """Start the statement (text parameters); True if the socket took all of it, else
        `flush` when the socket is writable until it has. `poll` tells when it is done."""
        self._results = []
        self._conn.send_query_prepared(_STATEMENT, params)
        return self.flush()

    def flush(self) -> bool:
        """Hand the socket what it takes of the statement; True once it has all of it. Never
        waits: a stalled server or network must not stall the event loop."""
        return self._conn.flush() == 0

    def poll(self) -> int | None:
        """The statement's count once it is done (committed), None while it runs. Raises the
        statement's error, or the connection's. O(1) syscalls: one non-blocking read."""
        conn = self._conn
        conn.consume_input()
        while not conn.is_busy():
            result = conn.get_result()
            if result is None:
                return self._count()
            self._results.append(result)
        return None

    def drain(self) -> None:
        """Read what arrived with no statement running (a notice, or the server ending the
        session, which raises here)."""
        self._conn.consume_input()

    def close(self) -> None:
        self._conn.finish()

    def _count(self) -> int:
        results, self._results = self._results, []
        for result in results:
            if result.status != pq.ExecStatus.TUPLES_OK:
                raise errors.error_from_result(result)
        value = results[-1].get_value(0, 0) if results else None
        if value is None:
            raise psycopg.InterfaceError("the journal statement returned no count")
        return int(value)
