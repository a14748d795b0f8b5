"""tools/dataset_stats.py: Figure-2 style plots and a JSON summary of a manifest dataset."""
import json
import sys

from conftest import REPO


def test_dataset_stats_on_tiny_data(tiny_data, tmp_path):
    sys.path.insert(0, REPO)
    from tools import dataset_stats
    from ctglip.utils.cli import run_cli
    assert run_cli(dataset_stats.main, [tiny_data, '--out', str(tmp_path)]) == 0
    summary = json.loads((tmp_path / 'dataset_stats.json').read_text())
    assert summary['train']['num_studies'] == 4
    assert summary['train']['organ_frequency']['liver'] == 4
    assert summary['test']['abnormality_counts']  # tiny test studies hold abnormal cases
    assert (tmp_path / 'dataset_stats.png').stat().st_size > 10_000
