"""One writer, hot standbys: the writer fence (`fence.py`, SQL in `store.py`), the standby
loop that takes over and steps down (`supervisor.py`), and the edge's view of it (`role.py`,
`guard.py`)."""
