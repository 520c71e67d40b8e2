"""The shell around the matching core: HTTP edge, service layer, store, workers, settings, CLI."""
