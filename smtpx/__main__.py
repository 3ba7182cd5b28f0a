"""``python -m smtpx``: the command line (needs the ``cli`` extra)."""

from smtpx.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
