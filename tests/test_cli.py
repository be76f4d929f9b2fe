"""The `timm-dan` entry point."""
import subprocess

import pytest

import timm_dan
from timm_dan.cli import main


def test_version_through_the_module_entry_point(python, subprocess_env):
    out = subprocess.run([python, '-m', 'timm_dan', '--version'], env=subprocess_env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f'timm-dan {timm_dan.__version__}'


def test_help_lists_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['--help'])
    assert exit_info.value.code == 0
    assert 'usage: timm-dan' in capsys.readouterr().out


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['no-such-command'])
    assert exit_info.value.code == 2
    assert 'invalid choice' in capsys.readouterr().err
