"""Keep freed CPU tensor memory in the process instead of returning it to the kernel.

glibc's ``malloc`` serves every allocation above its mmap threshold (at most 32 MB, adjusted
on the fly) with freshly mapped pages and unmaps them on ``free``. A CPU training step
allocates and frees its large activations and gradients every iteration, so each of them is
page-faulted in again, one 4 KiB page at a time, in the kernel: on the 2-core CI machine a
33 MB ``torch.zeros`` took 10.6 ms this way and 1.9 ms from memory the heap keeps, and the
MiT CT-GLIP step spent 18 % of its time in the kernel (docs/benchmarks.md, "Speed work").

``tune_cpu_malloc`` raises the mmap threshold (allocations up to 1 GiB come from the heap and
are reused) and the trim threshold (freed memory stays in the process). The price is that the
process keeps its peak heap until it exits (measured: peak RSS +8 % on the MiT step). The
command-line tools apply it on start (``ctglip.utils.cli.run_cli``); Python users call it
once. ``CTGLIP_CPU_MALLOC=default`` in the environment leaves glibc's behaviour alone. On a C
library without ``mallopt`` (macOS, musl) nothing changes and the call says so.
"""
import ctypes
import os

ENV_VAR = 'CTGLIP_CPU_MALLOC'
M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
_result = None  # (applied, why not) of the first call


def tune_cpu_malloc(mmap_threshold=1 << 30, trim_threshold=(1 << 31) - 1):
    """Set glibc's mmap and trim thresholds for this process (and the workers it forks);
    the first call decides, later calls return its result.

    Args:
        mmap_threshold (int): bytes; larger allocations are still mapped on their own.
        trim_threshold (int): bytes of free memory at the top of the heap kept before glibc
            gives it back.

    Returns:
        tuple[bool, str]: whether the thresholds are now set, and why not where they are not
        (``CTGLIP_CPU_MALLOC=default``, no ``mallopt``, or glibc refused the value).
    """
    global _result
    if _result is None:
        if os.environ.get(ENV_VAR, '').lower() in ('default', 'off', '0'):
            _result = (False, f'{ENV_VAR}={os.environ[ENV_VAR]}')
        else:
            _result = _mallopt(mmap_threshold, trim_threshold)
    return _result


def cpu_malloc_state():
    """``'tuned'`` after a successful ``tune_cpu_malloc``, else ``'default (<why>)'``."""
    if _result is None:
        return 'default (not requested)'
    return 'tuned' if _result[0] else f'default ({_result[1]})'


def _mallopt(mmap_threshold, trim_threshold):
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process already runs on
    except (OSError, AttributeError):
        return False, 'the C library has no mallopt (not glibc)'
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)):
        return False, f'mallopt refused M_MMAP_THRESHOLD={mmap_threshold}'
    if not mallopt(M_TRIM_THRESHOLD, int(trim_threshold)):
        return False, f'mallopt refused M_TRIM_THRESHOLD={trim_threshold}'
    return True, ''
