"""``python -m smtpx``: the command line (needs the ``cli`` extra)."""

from smtpx.cli import main

if __name__ == "__main__":
    main()
