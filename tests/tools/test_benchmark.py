"""tools/analysis_tools/benchmark.py and its primitives (ctglip.utils.benchmark) on the tiny
config: the JSON fields are there and sane. No assertion on how fast anything is."""
import json
import os.path as osp
import sys

import pytest
import torch

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import benchmark  # noqa: E402

TINY = 'configs/tests/tiny_ctglip.py'
TINY_CLIP = 'configs/tests/tiny_clip.py'


@pytest.fixture(scope='module')
def compared(tiny_bert, tiny_data, tmp_path_factory):
    """The tiny config alternated with itself (2 warm-up + 3 timed steps each), as JSON."""
    out = tmp_path_factory.mktemp('bench') / 'bench.json'
    benchmark.main([TINY, '--compare', TINY, '--iters', '3', '--warmup', '2',
                    '--data-root', tiny_data, '--json', str(out), '--cfg-options',
                    f'model.text_encoder.model_path={tiny_bert}'])
    return json.loads(out.read_text())


def test_every_config_has_sane_measurements(compared):
    assert compared['command'].startswith(f'python tools/analysis_tools/benchmark.py {TINY}')
    assert '--json' not in compared['command']
    assert compared['iters'] == 3 and compared['warmup'] == 2
    assert [c['label'] for c in compared['configs']] == ['tiny_ctglip (A)', 'tiny_ctglip (B)']
    for c in compared['configs']:
        t = c['step_time']
        assert t['n'] == 3 and len(c['times']) == 3 and all(x > 0 for x in c['times'])
        assert 0 < t['min'] <= t['q1'] <= t['median'] <= t['q3'] <= t['max']
        assert c['samples_per_s'] == pytest.approx(c['batch_size'] / t['median'])
        assert c['batch_size'] == 2 and c['dtype'] == 'float32' and not c['amp']
        assert 0 < c['trainable'] < c['params']  # the text encoder is frozen
        # FLOPs: forward + backward of the whole step, most of it in the backbone
        assert c['flops_per_step'] > 0
        assert 0 < c['flops_by_part']['backbone'] <= c['flops_per_step']
        assert c['achieved_flops_per_s'] > 0 and c['mfu_gemm'] > 0 and c['mfu_conv3d'] > 0
        assert c['peak_dtype'] == 'float32'
        # memory: the process high-water and the live tensors of one step
        assert c['memory']['rss_peak_mib'] > 0 and c['memory']['device_peak_mib'] is None
        tensors = c['memory']['tensor_peak']
        assert tensors['total'] >= tensors['state'] > 0
        assert tensors['transient'] == tensors['total'] - tensors['state']
        # the loader alone, against what a step consumes
        loader = c['loader']
        assert loader['samples_per_s'] > 0 and loader['num_workers'] == 0
        assert loader['ratio_to_step'] == pytest.approx(
            loader['samples_per_s'] / c['samples_per_s'])


def test_text_encoder_work_is_counted(compared):
    for c in compared['configs']:
        warmup, timed = c['text']['warmup'], c['text']['timed']
        # every step asks the encoder for the texts of its contrastive terms
        assert warmup['calls'] >= 2 and timed['calls'] >= 3
        assert warmup['texts'] > 0 and timed['texts'] > 0
        # the first step misses the cache: the language model runs; texts enter the cache
        assert warmup['forwards'] >= 1 and warmup['encoded'] >= 1
        assert timed['cached'] >= warmup['encoded']
        assert timed['encoded'] <= timed['texts']
        assert c['text']['forwards_per_step'] == pytest.approx(timed['forwards'] / 3)


def test_peaks_and_the_ratio_of_a_config_with_itself(compared):
    for kind in ('gemm', 'conv3d'):
        for dtype in ('float32', 'bfloat16'):
            assert compared['peaks'][kind][dtype]['flops_per_s'] > 0
    [comparison] = compared['compare']
    assert comparison['a'] == 'tiny_ctglip (A)' and comparison['b'] == 'tiny_ctglip (B)'
    ratio = comparison['ratio']
    assert ratio['n'] == 3 and len(comparison['ratios']) == 3
    assert 1 / 3 < ratio['median'] < 3  # the same config: near 1 (loose: a shared machine)
    a, b = compared['configs']
    assert comparison['ratio_of_medians'] == pytest.approx(
        b['step_time']['median'] / a['step_time']['median'])
    assert comparison['ratio_of_minima'] == pytest.approx(
        b['step_time']['min'] / a['step_time']['min'])


def test_table_has_a_row_per_config_and_the_ratio(compared):
    text = benchmark.table(compared)
    rows = [line for line in text.splitlines() if line.startswith('| tiny_ctglip')]
    assert len(rows) == 2 and all(row.count('|') == 13 for row in rows)
    assert 'Step time tiny_ctglip (B) / tiny_ctglip (A):' in text
    assert 'Peaks measured in the same run: GEMM ' in text
    for peak in ('GEMM float32', 'GEMM bfloat16', 'Conv3d float32', 'Conv3d bfloat16'):
        assert peak in text
    assert text.startswith(f"`{compared['command']}`")


def test_update_readme_writes_the_section(compared, tmp_path, monkeypatch):
    import readme_section
    readme = tmp_path / 'README.md'
    readme.write_text('intro\n<!-- benchmark-table:start -->\nold\n<!-- benchmark-table:end -->\n')
    real = readme_section.update_readme
    monkeypatch.setattr(readme_section, 'update_readme',
                        lambda name, markdown: real(name, markdown, readme=str(readme)))
    benchmark.update_readme(benchmark.README_SECTION, benchmark.table(compared))
    text = readme.read_text()
    assert 'old' not in text and '| tiny_ctglip (A) |' in text


def test_from_json_renders_a_saved_run_without_measuring(compared, tmp_path, monkeypatch):
    """--from-json prints the saved run's table (its own command in the caption) and with
    --update-readme writes it, building no model."""
    saved = tmp_path / 'bench.json'
    saved.write_text(json.dumps(compared))
    monkeypatch.setattr(benchmark, 'Subject', None)  # measuring would fail
    written = []
    monkeypatch.setattr(benchmark, 'update_readme', lambda *a: written.append(a))
    out = benchmark.main(['--from-json', str(saved), '--update-readme'])
    assert out == compared
    assert written == [(benchmark.README_SECTION, benchmark.table(compared))]


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        benchmark.parse_args([TINY, TINY_CLIP, '--compare', TINY_CLIP])  # one CONFIG2 per CONFIG
    with pytest.raises(SystemExit):
        benchmark.parse_args([])
    args = benchmark.parse_args(['--memory-model'])
    assert args.size == '112x256x352' and args.batch == 8 and args.arch == 'paper'
    assert benchmark.command_line([TINY, '--json', 'x.json', '--update-readme', '--iters', '2']) \
        == f'python tools/analysis_tools/benchmark.py {TINY} --iters 2'


def test_memory_model_on_the_tiny_config(tiny_bert, tiny_data, tmp_path):
    out = tmp_path / 'memory.json'
    results = benchmark.main([
        '--memory-model', TINY, '--arch', 'tiny', '--crops', '32x32x32', '--size', '64x64x64',
        '--batch', '2', '--data-root', tiny_data, '--json', str(out), '--cfg-options',
        f'model.text_encoder.model_path={tiny_bert}'])
    assert json.loads(out.read_text())['rows'] == json.loads(json.dumps(results['rows']))
    rows = results['rows']
    assert [r['with_cp'] for r in rows] == [False, True]
    for r in rows:
        assert r['padded'] == [64, 64, 64] and r['batch'] == 2
        assert r['fake']['backbone_flops_per_sample'] > 0
        assert r['scaled']['flops_per_sample'] > 0 and r['scaled']['act_per_sample'] > 0
        assert r['peak'] >= r['fixed_bytes'] > 0 and r['fits'] and r['max_batch'] >= 2
        assert r['gpu_days'] > 0
        [m] = r['measured']
        assert m['crop'] == [32, 32, 32] and m['memory']['total'] > 0 and m['flops'] > 0
    # checkpointing recomputes the forward: more FLOPs, fewer live activations
    assert rows[1]['fake']['backbone_flops_per_sample'] > rows[0]['fake'][
        'backbone_flops_per_sample']
    assert rows[1]['fake']['backbone_memory']['total'] < rows[0]['fake']['backbone_memory'][
        'total']
    text = benchmark.memory_table(results)
    assert text.count('| tiny_ctglip tiny |') == 2


def test_fake_count_equals_the_real_count():
    """The shapes-only step counts what a real step of the same size counts."""
    from ctglip.models.backbones import MiT3D, NNUNetEncoder3D
    from ctglip.utils.benchmark import fake_backbone_step, flop_counter, tensor_memory_peak
    for cls in (MiT3D, NNUNetEncoder3D):
        torch.manual_seed(0)
        fake = fake_backbone_step(cls('tiny'), (2, 1, 32, 32, 32), amp=False)
        model = cls('tiny').train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(2, 1, 32, 32, 32)

        def step():
            model(x).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        with flop_counter() as counter:
            model(x).mean().backward()
        assert fake['flops'] == counter.get_total_flops() > 0
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        real = tensor_memory_peak(step, model, optimizer, x)
        assert fake['memory']['state'] == real['state'] > 0
        # the same tensors (up to what the CPU kernels keep as scratch)
        assert real['total'] == pytest.approx(fake['memory']['total'], rel=0.1)


def test_cpu_attention_flops_are_counted():
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    from ctglip.utils.benchmark import flop_counter
    q = torch.randn(2, 4, 64, 16, requires_grad=True)
    with flop_counter() as counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    shape = tuple(q.shape)
    # torch's formulas for the CUDA kernels: forward 2 matmuls, backward 5 (scores recomputed)
    assert counter.get_total_flops() == sdpa_flop_count(shape, shape, shape) + \
        sdpa_backward_flop_count(shape, shape, shape, shape) == 14 * 2 * 4 * 64 * 64 * 16


def test_summarize_and_live_tensor_peak():
    from ctglip.utils.benchmark import LiveTensorPeak, summarize
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s['median'], s['min'], s['max'], s['n']) == (2.5, 1.0, 4.0, 4)
    assert s['q1'] == 1.75 and s['q3'] == 3.25 and s['iqr'] == 1.5
    assert summarize([2.0])['iqr'] == 0
    with LiveTensorPeak() as tracker:
        a = torch.ones(1024)  # 4 KiB
        b = torch.ones(2048)  # 8 KiB
        del a
        c = torch.ones(256)  # 1 KiB
    assert tracker.peak == 12 * 1024 and tracker.current == 9 * 1024
    del b, c


def test_backbone_speed_uses_the_harness_primitives():
    import backbone_speed
    args = backbone_speed.parse_args(['--size', '16', '--steps', '2', '--warmup', '1',
                                      '--threads', '1'])
    row = backbone_speed.measure('MiT3D', 'tiny', args)
    assert row['flops'] > 0 and 0 < row['time_min'] <= row['time_median']
    assert row['out_shape'][0] == 16 and row['size'] == 16
    table = backbone_speed.format_table([row], args,
                                        'python tools/analysis_tools/backbone_speed.py')
    assert '| MiT3D | tiny |' in table and 'GFLOP/step' in table
