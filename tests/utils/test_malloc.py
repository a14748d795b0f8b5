"""ctglip.utils.malloc: freed CPU tensor memory is reused instead of page-faulted in again."""
import os
import subprocess
import sys

import pytest

# In a fresh interpreter (the thresholds are process-wide): allocate, fill and free a 64 MB
# tensor six times and count the page faults of the last three (by then the heap has its
# peak size; glibc's default maps every allocation above 32 MB anew).
_PROBE = '''
import resource, sys, torch
from ctglip.utils.malloc import cpu_malloc_state, tune_cpu_malloc
applied, reason = tune_cpu_malloc() if sys.argv[1] == "tune" else (False, "not requested")
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.zeros(16 * 2**20); x.add_(1); del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sum(faults[3:]), cpu_malloc_state(), reason, sep="|")
'''


def _probe(mode, **env):
    out = subprocess.run([sys.executable, '-c', _PROBE, mode], capture_output=True, text=True,
                         env=dict(os.environ, **env), check=True).stdout.strip()
    applied, faults, state, reason = out.splitlines()[-1].split('|')
    return applied == 'True', int(faults), state, reason


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt')
def test_tuned_heap_reuses_freed_tensor_memory():
    applied, faults, state, _ = _probe('tune')
    if not applied:
        pytest.skip(f'not glibc: {state}')
    assert state == 'tuned'
    # 64 MB is 16384 pages of 4 KiB: glibc's default maps them anew each time (one fault
    # per page); the tuned heap hands back the pages of the freed tensor.
    assert faults < 1000
    _, default_faults, default_state, _ = _probe('default')
    assert default_state == 'default (not requested)'
    assert default_faults > 3 * 10000


def test_environment_variable_keeps_glibc_default():
    applied, _, state, reason = _probe('tune', CTGLIP_CPU_MALLOC='default')
    assert not applied
    assert reason == 'CTGLIP_CPU_MALLOC=default'
    assert state == 'default (CTGLIP_CPU_MALLOC=default)'


def test_run_cli_tunes_the_heap(monkeypatch):
    from ctglip.utils import malloc
    from ctglip.utils.cli import run_cli
    calls = []
    monkeypatch.setattr(malloc, 'tune_cpu_malloc', lambda: calls.append(1) or (True, ''))
    assert run_cli(lambda argv: None, []) in (None, 0)
    assert calls == [1]
