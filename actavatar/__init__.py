"""ActAvatar toolkit: the `actavatar` console script that dispatches to each package's cli.py."""

__version__ = "0.1.0"
