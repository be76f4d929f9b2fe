"""`import timm_dan` is light and still registers the dan_* models in timm, in either import order."""
import subprocess

import pytest


def _run(python, env, code: str) -> str:
    proc = subprocess.run([python, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _imported(python, env, args: list[str]) -> set[str]:
    """Every module `python -X importtime ARGS` imports (importtime lists them on stderr)."""
    proc = subprocess.run([python, '-X', 'importtime', *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {line.rsplit('|', 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith('import time:')}


@pytest.mark.parametrize('args', [['-m', 'timm_dan', '--version'], ['-m', 'timm_dan', '--help'],
                                  ['-m', 'timm_dan', 'predict', '--help'], ['-m', 'timm_dan', 'hub', '--help'],
                                  ['-m', 'timm_dan', 'data', '--help'], ['-m', 'timm_dan', 'data', 'info', '--help'],
                                  ['-c', 'import timm_dan; timm_dan.LABELS; timm_dan.__version__']])
def test_version_help_and_the_package_import_no_torch(args, python, subprocess_env):
    modules = _imported(python, subprocess_env, args)
    assert 'timm_dan' in modules
    assert not modules & {'torch', 'timm', 'datasets', 'cv2', 'huggingface_hub'}, sorted(
        modules & {'torch', 'timm', 'datasets', 'cv2', 'huggingface_hub'})


@pytest.mark.parametrize('code', [
    'import timm_dan; import timm',
    'import timm; import timm_dan',
    'import timm_dan; from timm import create_model as make; import timm',
    'from timm_dan import DAN; import timm; assert isinstance(timm.create_model("dan_resnet18"), DAN)',
    'import timm_dan.models; import timm',
    'import timm_dan; import timm.layers; import timm',
])
def test_dan_models_are_registered_in_either_import_order(code, python, subprocess_env):
    out = _run(python, subprocess_env, code + '\nimport sys, importlib.machinery\n'
               'model = timm.create_model("dan_resnet18", num_classes=3)\n'
               'print(type(model).__name__, model.num_classes, len(timm.list_models("dan_*")))\n'
               # the hook is gone and timm keeps its own loader
               'print(type(timm.__loader__).__name__, type(timm.__spec__.loader).__name__,\n'
               '      any(type(f).__name__ == "_RegisterAfterTimm" for f in sys.meta_path))\n')
    first, second = out.splitlines()
    name, num_classes, count = first.split()
    assert name == 'DAN' and num_classes == '3' and int(count) >= 5
    assert second.split() == ['SourceFileLoader', 'SourceFileLoader', 'False']


def test_lazy_names_and_subpackages(python, subprocess_env):
    out = _run(python, subprocess_env,
               'import sys, timm_dan\n'
               'print("torch" in sys.modules)\n'
               'print(timm_dan.DANLoss is timm_dan.losses.DANLoss, timm_dan.HF_HUB_NAMESPACE)\n'
               'print("dan_resnet18" in sys.modules["timm"].list_models("dan_*"))\n'
               'print(set(timm_dan.__all__) <= set(dir(timm_dan)))\n'
               'try:\n    timm_dan.no_such_name\nexcept AttributeError as e:\n    print(e)\n')
    assert out.splitlines() == ['False', 'True timm-dan', 'True', 'True',
                                "module 'timm_dan' has no attribute 'no_such_name'"]
