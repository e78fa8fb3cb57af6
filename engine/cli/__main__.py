"""``python -m engine.cli``: the same as the ``weft`` command."""

from engine.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
