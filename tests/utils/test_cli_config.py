"""Config loading of the command-line tools: overrides and the schedule that follows them."""
import os.path as osp

import pytest
from conftest import REPO

from ctglip.utils.cli import load_config
from ctglip.utils.errors import ConfigError

CONFIG = osp.join(REPO, 'configs', 'ctglip', 'ctglip_nnunet_104organ.py')  # cpu_demo.py's 300


def ends(cfg):
    return [s['end'] for s in cfg.param_scheduler]


def test_cosine_schedule_follows_an_overridden_max_iters(capsys):
    assert ends(load_config(CONFIG)) == [20, 300]
    assert ends(load_config(CONFIG, ['train_cfg.max_iters=600'])) == [20, 600]
    assert 'param_scheduler[1].end follows train_cfg.max_iters (300 -> 600)' in \
        capsys.readouterr().err
    assert ends(load_config(CONFIG, ['train_cfg.max_iters=100'])) == [20, 100]


def test_a_run_shorter_than_the_warm_up_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r'train_cfg.max_iters=10 ends before '
                       r'param_scheduler\[1\] \(CosineAnnealingLR\) begins at iteration 20'):
        load_config(CONFIG, ['train_cfg.max_iters=10'])


def test_both_families_fine_tune_on_one_4800_iteration_schedule():
    for init in ('scratch', 'clip', 'ctglip'):
        for family, iters in (('nnunet', 4800), ('mit', 4800)):
            cfg = load_config(osp.join(REPO, 'configs', 'finetune', f'{init}_{family}_tumor.py'))
            assert cfg.train_cfg.max_iters == iters and ends(cfg) == [20, iters], (init, family)


def test_an_explicit_scheduler_override_wins():
    cfg = load_config(CONFIG, ['train_cfg.max_iters=600', 'param_scheduler.1.end=400'])
    assert ends(cfg) == [20, 400]


def test_the_mit_family_trains_500_iterations_and_the_nnunet_family_300():
    """The main command's schedule (configs/ctglip/ctglip_mit_104organ.py) and its variants."""
    for name in ('ctglip_mit_104organ', 'clip_mit_104organ', 'anatomy_mit_104organ',
                 'ctglip-nodict_mit_104organ', 'ctglip-plain_mit_104organ'):
        cfg = load_config(osp.join(REPO, 'configs', 'ctglip', f'{name}.py'))
        assert cfg.train_cfg.max_iters == 500 and ends(cfg) == [20, 500], name
    cfg = load_config(osp.join(REPO, 'configs', 'ctglip', 'clip_nnunet_104organ.py'))
    assert cfg.train_cfg.max_iters == 300 and ends(cfg) == [20, 300]
