"The ResNet18-1D throughput benchmark runs and prints one line per configuration (the encoder itself is tested in nbs/10_resnet1d.ipynb)."
import re, subprocess, sys
import pytest


def run_bench(root, *args):
    return subprocess.run([sys.executable, 'bench/resnet_throughput.py', *args], cwd=root, capture_output=True, text=True, timeout=300)


def test_quick_benchmark_prints_a_line_per_rate(root):
    r = run_bench(root, '--quick', '--threads', '1')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith('ResNet18-1D forward+backward') and 'threads 1' in lines[0] and 'load average' in lines[0]
    rows = [re.match(r'cpu\s+(\d+) Hz\s+T=(\d+)\s+batch\s+4\s+threads\s+1\s+1 steps .* ([\d.]+) records/s\s+([\d.]+) GFLOP/record\s+([\d.]+) GFLOP/s$', l)
            for l in lines[1:]]
    assert len(rows) == 2 and all(rows), r.stdout
    assert [(int(m[1]), int(m[2])) for m in rows] == [(100, 1000), (500, 5000)]
    assert [float(m[4]) for m in rows] == [1.046, 5.168]  # flop counter: ~1.05 and ~5.2 GFLOP per record (REFERENCE.md)
    for m in rows: assert float(m[3]) > 0 and abs(float(m[5]) - float(m[3]) * float(m[4])) <= 0.05 * float(m[4]) + 0.06  # rounding of the printed numbers


def test_cuda_request_without_a_gpu_says_so(root):
    import torch
    if torch.cuda.is_available(): pytest.skip('a GPU is present')
    r = run_bench(root, '--device', 'cuda', '--quick')
    assert r.returncode != 0 and 'no CUDA device here' in r.stderr
