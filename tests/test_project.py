"The project's own promises: the install stays CPU-friendly, and the README's two commands are the ones CI runs."
import configparser, shlex, subprocess, sys
from packaging.requirements import Requirement


def _requirements(root):
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(root / 'settings.ini')
    d = cfg['DEFAULT']
    return {Requirement(r).name: Requirement(r) for r in shlex.split(d['requirements']) + shlex.split(d['dev_requirements'])}


def test_torch_requirement_is_satisfied_by_the_local_cpu_wheel(root):
    reqs = _requirements(root)
    assert reqs['torch'].specifier.contains('2.13.0'), f"torch requirement {reqs['torch']} would not accept 2.13.0"


def test_nbdev_pins_that_make_nbdev_2_work(root):
    reqs = _requirements(root)
    assert reqs['nbdev'].specifier.contains('2.4.14') and not reqs['nbdev'].specifier.contains('3.0.0')
    assert reqs['execnb'].specifier.contains('0.1.18')
    assert not reqs['fastcore'].specifier.contains('2.0.0')


def test_ci_runs_exactly_the_readme_test_command(root):
    ci = [l for l in (root / '.ci' / 'run').read_text().splitlines() if l.strip() and not l.startswith(('#', 'set ', 'cd '))]
    assert ci == ['make test']
    readme = (root / 'README.md').read_text()
    assert 'make test' in readme and 'make demo' in readme


def test_package_imports_without_dev_tools(root):
    "The library must not need nbdev, pytest or JupyterLab at run time."
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name.split('.')[0] in ('nbdev', 'pytest', 'jupyterlab', 'execnb'): raise ImportError('dev tool imported: ' + name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            "import etp_nbdev.losses, etp_nbdev.demo; print('ok')")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr


def test_commands_do_not_wait_for_heavy_imports(root):
    "Found by the full-scale dry run: every command paid 0.8 s at start for scipy.signal (CPSC2018 resampling). Heavy modules load on use."
    code = ("import sys, etp_nbdev.pretrain, etp_nbdev.demo, etp_nbdev.probe, etp_nbdev.zeroshot, etp_nbdev.prepare\n"
            "print(sorted(m for m in ('scipy.signal', 'scipy.io', 'transformers', 'sklearn', 'matplotlib.pyplot') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0 and out.stdout.strip() == '[]', out.stdout + out.stderr
