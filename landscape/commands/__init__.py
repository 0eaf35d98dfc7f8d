"""Subcommands of the `landscape` CLI; see :mod:`landscape.cli`."""
