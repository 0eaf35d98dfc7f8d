"""Every option of every subcommand has help text, and its help shows the default where there is
one to show (landscape.cli.HelpFormatter appends it)."""
import argparse

import pytest

from landscape.cli import HelpFormatter, build_parser


def subcommands():
    """``{name: parser}`` of every ``landscape`` subcommand."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


COMMANDS = subcommands()


def options(parser):
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_every_command_is_listed():
    assert {"train", "surface", "plot", "interpolate", "trajectory", "diagnose", "figures", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help(name):
    missing = [a.option_strings[0] for a in options(COMMANDS[name]) if not (a.help or "").strip()]
    missing += [a.dest for a in COMMANDS[name]._actions if not a.option_strings and not (a.help or "").strip()]
    assert not missing, f"landscape {name}: options without help: {' '.join(missing)}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_default_is_shown(name):
    """A default that is not None/False/empty appears in the option's help as printed."""
    parser = COMMANDS[name]
    formatter = HelpFormatter(parser.prog)
    hidden = []
    for action in options(parser):
        if action.default in (None, False, [], (), argparse.SUPPRESS) or not action.help:
            continue   # no default to show; options without help fail the test above
        if "default" not in formatter._expand_help(action):
            hidden.append(action.option_strings[0])
    assert not hidden, f"landscape {name}: defaults not shown: {' '.join(hidden)}"


def test_help_prints_for_every_command(capsys):
    for name, parser in COMMANDS.items():
        text = parser.format_help()
        assert text.startswith(f"usage: landscape {name}"), name


def test_reg_help_shows_the_whole_spec():
    """``--reg`` takes ``NAME[:COEF[:KEY=VALUE,...]]`` (regularizers.registry); its help says so."""
    (reg,) = [a for a in COMMANDS["train"]._actions if "--reg" in a.option_strings]
    assert "KEY=VALUE" in f"{reg.metavar} {reg.help}"
