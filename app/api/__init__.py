"""The HTTP edge: one module per resource. Parse, call one service function, render."""
