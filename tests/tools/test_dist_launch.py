"""tools/dist_train.sh and tools/slurm_train.sh: a two-rank gloo run of the tiny config on the
CPU, each rank on its own studies, resumed on one process; the srun command line; the one-line
error of a CPU-only run left on NCCL."""
import json
import os
import os.path as osp
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

TINY = 'configs/tests/tiny_ctglip.py'

# Records, per rank and in order, the case ids of the studies each training iteration gets.
RECORD_CASES_HOOK = '''
import json
import os.path as osp

from mmengine.hooks import Hook

from ctglip.registry import HOOKS


@HOOKS.register_module()
class RecordCasesHook(Hook):

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        path = osp.join(runner.work_dir, f'cases_rank{runner.rank}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(dict(
                world_size=runner.world_size,
                cases=[s.case_id for s in data_batch['data_samples']])) + '\\n')
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def two_rank_run(tiny_bert, tiny_data, tmp_path_factory):
    """Train the tiny config on 2 CPU processes (4 iterations), recording each rank's cases."""
    tmp = tmp_path_factory.mktemp('dist')
    (tmp / 'record_cases.py').write_text(RECORD_CASES_HOOK)
    config = tmp / 'tiny_ctglip_recorded.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = [{osp.join(REPO, TINY)!r}]
        custom_imports = dict(imports=['record_cases'], allow_failed_imports=False)
        custom_hooks = [dict(type='RNGStateHook'), dict(type='RecordCasesHook')]
        '''))
    work = tmp / 'work'
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(filter(None, [str(tmp), os.environ.get('PYTHONPATH')])))
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(work),
         '--data-root', tiny_data, '--cfg-options', f'model.text_encoder.model_path={tiny_bert}',
         'env_cfg.dist_cfg.backend=gloo'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return work, proc


def test_two_ranks_train_and_write_a_checkpoint(two_rank_run):
    work, proc = two_rank_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (work / 'iter_4.pth').is_file()
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert 'Iter(train) [4/4]' in proc.stdout + proc.stderr


def test_each_rank_trains_on_its_own_studies(two_rank_run, tiny_data):
    """The sampler shards one shuffled order by rank: in the first pass over the training split
    the ranks' studies are disjoint and together are the whole split."""
    work, proc = two_rank_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with open(osp.join(tiny_data, 'manifest.jsonl')) as f:
        train = {r['case_id'] for r in map(json.loads, f) if r['split'] == 'train'}
    assert len(train) % 2 == 0  # an even split: each rank's first pass is len(train) / 2 studies
    firsts = []
    for rank in range(2):
        records = [json.loads(line) for line in
                   (work / f'cases_rank{rank}.jsonl').read_text().splitlines()]
        assert len(records) == 4 and all(r['world_size'] == 2 for r in records)
        cases = [c for r in records for c in r['cases']]
        firsts.append(set(cases[:len(train) // 2]))
        assert len(firsts[-1]) == len(train) // 2
    assert not firsts[0] & firsts[1]
    assert firsts[0] | firsts[1] == train


def test_two_rank_checkpoint_resumes_on_one_process(two_rank_run, tiny_bert, tiny_data):
    work, proc = two_rank_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    resumed = subprocess.run(
        [sys.executable, 'tools/train.py', TINY, '--resume', '--work-dir', str(work),
         '--data-root', tiny_data, '--cfg-options', f'model.text_encoder.model_path={tiny_bert}',
         'train_cfg.max_iters=6'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert 'iter_4.pth' in log and 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    assert (work / 'iter_6.pth').is_file()


@pytest.mark.parametrize('script', ['tools/dist_train.sh', 'tools/slurm_train.sh'])
def test_launch_scripts_are_executable_and_parse(script):
    path = osp.join(REPO, script)
    assert os.stat(path).st_mode & stat.S_IXUSR
    assert subprocess.run(['bash', '-n', path]).returncode == 0
    usage = subprocess.run(['bash', path], capture_output=True, text=True)
    assert usage.returncode == 2 and 'usage:' in usage.stderr


def test_slurm_train_runs_train_py_under_srun(tmp_path):
    """A stand-in srun prints its arguments: the partition, job, task counts and the tool."""
    srun = tmp_path / 'srun'
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}', GPUS='16',
               GPUS_PER_NODE='8', CPUS_PER_TASK='3', SRUN_ARGS='--time=1:00:00 --exclusive')
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'job1', TINY, '--amp'],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.splitlines()
    for expected in ('-p', 'gpu', '--job-name=job1', '--gres=gpu:8', '--ntasks=16',
                     '--ntasks-per-node=8', '--cpus-per-task=3', '--time=1:00:00',
                     '--exclusive'):
        assert expected in args
    assert args[args.index('python'):] == ['python', '-u', osp.join(REPO, 'tools/train.py'), TINY,
                                           '--launcher', 'slurm', '--amp']


def test_cpu_only_run_on_nccl_gives_the_fix(monkeypatch):
    import torch
    from mmengine.config import Config

    from ctglip.utils.errors import ConfigError
    sys.path.insert(0, REPO)
    from tools.train import init_cpu_distributed  # noqa: E402
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    with pytest.raises(ConfigError, match='env_cfg.dist_cfg.backend=gloo'):
        init_cpu_distributed(cfg)
    cfg.launcher = 'slurm'
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    with pytest.raises(ConfigError, match='tools/dist_train.sh'):
        init_cpu_distributed(cfg)
    init_cpu_distributed(Config(dict(launcher='none')))  # not distributed: nothing to do
