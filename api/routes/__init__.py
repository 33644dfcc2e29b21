"""HTTP routes: quotes (public), info (zones, model, runs, health, metrics) and admin (token-guarded)."""
