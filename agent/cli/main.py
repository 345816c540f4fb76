"""`python -m agent.cli.main ...` runs the CLI (same as the `personae` script)."""

from agent.cli import app

if __name__ == "__main__":
    app()
