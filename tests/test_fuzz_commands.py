"""Every numeric option of every command, generated from the parser, given hostile values (issue 36, part 6): a value
past its bound, below it or not a number stops with one line and exit code 2, before any work; never a traceback,
never a hang. An option added to a command is fuzzed here without a new test. (`reward` and `dpo` take TRL's parser,
fuzzed in tests/test_trainer_cli.py.)"""

import argparse

import pytest

from w2s_align.cli import build_parser, main

# The commands whose options are w2s-align's own, with what each needs besides the option.
COMMANDS = {"run": ["recipes/quickstart.yaml"], "plan": ["recipes/quickstart.yaml"], "calibrate": []}
HOSTILE = ["-1", "1e30", "nan", "inf", "many", "99999999999999999999"]


def numeric_options() -> list[tuple[str, str]]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return [
        (command, action.option_strings[-1])
        for command in COMMANDS
        for action in commands[command]._actions
        if action.option_strings and action.type in (int, float)
    ]


OPTIONS = numeric_options()


def test_the_harness_finds_the_options():
    assert {("run", "--jobs"), ("calibrate", "--worlds"), ("calibrate", "--pairs"), ("calibrate", "--bootstrap")} <= {
        *OPTIONS
    }


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[" ".join(o) for o in OPTIONS])
def test_every_numeric_option_refuses_hostile_values_with_one_line(command, option, tmp_path, capsys):
    for value in HOSTILE:
        argv = [command, *COMMANDS[command], option, value]
        if command == "run":
            argv.append(f"output_dir={tmp_path / 'run'}")
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's own refusal of a value that is not a number
            code = stop.code
        err = capsys.readouterr().err
        shown = f"{' '.join(argv)}"
        assert code == 2, f"{shown} was accepted"
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, (shown, err)
        assert option.lstrip("-").split("-")[0] in err, (shown, err)
    assert not (tmp_path / "run").exists()
