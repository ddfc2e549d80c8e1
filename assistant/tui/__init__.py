"""The Textual terminal UI: `run_app()` in app.py starts it."""
