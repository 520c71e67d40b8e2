"""The schema: numbered plain SQL files, applied in order (app/database.py).

A package only so the files ship inside the wheel (`pip install .`) and are read with
importlib.resources, wherever the service is started from.
"""
