"""The `timm-dan` entry point: version, the commands it lists, errors for unknown ones."""
import subprocess

import pytest

import timm_dan
from timm_dan.cli import COMMANDS, main


def test_version_through_the_module_entry_point(python, subprocess_env):
    out = subprocess.run([python, '-m', 'timm_dan', '--version'], env=subprocess_env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f'timm-dan {timm_dan.__version__}'


def test_the_command_line_and_its_exit_load_no_torch(python, subprocess_env):
    code = ('import atexit, sys; import timm_dan.cli; from timm_dan.cpu import exit_now, machine_class\n'
            'atexit.register(lambda: print(machine_class("cuda:0"), "torch" in sys.modules))\n'
            'exit_now(0)')
    out = subprocess.run([python, '-c', code], env=subprocess_env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'cuda False', out.stderr


def test_help_lists_every_command_with_its_purpose(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: timm-dan [-h] [--version] COMMAND ...')
    assert set(COMMANDS) == {'data', 'predict', 'export', 'hub', 'demo'}
    listing = ' '.join(out.split('COMMAND\n', 1)[1].split('options:')[0].split())  # argparse wraps long lines
    for name, (_, help_text) in COMMANDS.items():
        assert f'{name} {help_text}' in listing, listing


@pytest.mark.parametrize('command, expected', [
    (['data', '--help'], ['info', 'export']),
    (['hub', '--help'], ['convert-official', 'convert-backbone', 'push', 'card']),
    (['predict', '--help'], ['--detector', '--video', '--precision']),
    (['export', '--help'], ['--format', '--output', '--opset', '--static-batch']),
    (['demo', '--help'], ['--model', '--port', '--share', '--host']),
])
def test_each_command_has_its_own_options(command, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f'usage: timm-dan {command[0]} ')
    assert all(option in out for option in expected), out


def test_no_command_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    assert 'usage: timm-dan' in capsys.readouterr().out


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['no-such-command'])
    assert exit_info.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_bad_input_inside_a_command_is_one_line_exit_1(tmp_path, capsys):
    (tmp_path / 'empty.pth').write_bytes(b'')
    code = main(['hub', 'convert-official', str(tmp_path / 'empty.pth'), '--dataset', 'rafdb',
                 '--output-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith('timm-dan hub: error: ') and err.count('\n') == 1, err
    assert 'Traceback' not in err and not (tmp_path / 'out').exists()


def test_the_light_copies_of_choices_match_their_sources():
    """The parsers list these without importing torch or OpenCV: they must equal what the code accepts."""
    from timm_dan.cli import data, hub, predict
    from timm_dan.data import FER_DATASETS
    from timm_dan.inference.detectors import DETECTORS
    from timm_dan.models.official import OFFICIAL_CLASS_ORDERS
    assert hub.OFFICIAL_DATASETS == tuple(sorted(OFFICIAL_CLASS_ORDERS))
    assert data.DATASET_NAMES == tuple(sorted(FER_DATASETS))
    assert predict.DETECTORS == DETECTORS


@pytest.mark.parametrize('command', [[], ['data'], ['data', 'info'], ['data', 'export'], ['hub'],
                                     ['hub', 'convert-official'], ['hub', 'convert-backbone'], ['hub', 'push'],
                                     ['hub', 'card'], ['hub', 'space'], ['predict'], ['export']])
def test_help_is_plain_text(command, capsys):
    """Help is read in a terminal: no Markdown backticks (a module docstring used as the description had them)."""
    with pytest.raises(SystemExit):
        main([*command, '--help'])
    out = capsys.readouterr().out
    assert out.startswith(f'usage: timm-dan {" ".join(command)}'.rstrip()) and '`' not in out, out


def test_data_info_title_names_the_set_once(capsys):
    assert main(['data', 'info', 'synthetic', '-o', 'num_samples=8', '-o', 'num_validation_samples=8',
                 '-o', 'image_size=32', '-o', 'num_classes=2']) == 0
    assert capsys.readouterr().out.splitlines()[0] == 'synthetic: Synthetic FACS-prototype faces (built in)'


@pytest.mark.parametrize('script, args', [
    ('hub/convert_official.py', ['--dataset', 'rafdb']),
    ('hub/convert_backbone.py', []),
])
def test_a_photo_given_as_checkpoint_is_one_line_exit_1(script, args, repo_root, tmp_path, python, subprocess_env):
    photo = tmp_path / 'not_a_checkpoint.jpg'
    photo.write_bytes(b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + bytes(range(256)) * 4)
    proc = subprocess.run([python, str(repo_root / script), str(photo), *args, '--output-dir', str(tmp_path / 'out')],
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.count('\n') == 1, proc.stderr
    assert proc.stderr == (f'timm-dan hub: error: {photo} is not a PyTorch checkpoint: torch.load could not read it '
                           f'(UnpicklingError); expected a .pth file saved with torch.save\n')
    assert not (tmp_path / 'out').exists()
