"`agentflow bench`: both sides run on the same data and the report carries speeds, F1, memory and ratios"
import json
from conftest import run_cli

def test_bench_predict_reports_both_sides(tmp_path):
    r = run_cli('bench', 'predict', '--n', 24, '--batch-sizes', '1,8', '--json', tmp_path/'p.json')
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path/'p.json').read_text())
    assert set(rep['results']) == {'1', '8'}
    for res in rep['results'].values(): assert res['ours'] > 0 and res['pipeline'] > 0 and res['ratio'] > 0
    assert 'best against best' in r.stdout
    w = rep['whole']                     # the whole command against a whole pipeline script, each from its start
    assert min(w['ours_s'], w['startup_s'], w['pipeline_s']) > 0 and 'whole processes' in r.stdout

def test_bench_train_runs_agentflow_and_the_trainer(tmp_path):
    r = run_cli('bench', 'train', '--max-train', 48, '--epochs', 1, '--json', tmp_path/'t.json')
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path/'t.json').read_text())
    from agentflow.core import fast_bf16
    assert rep['skipped'] == ([] if fast_bf16() else ['group_bf16'])    # emulated bf16 cannot be the fastest: left out, and said
    assert len(rep['runs']) == 4 - len(rep['skipped']) and sum(k.startswith('Trainer') for k in rep['runs']) == 3 - len(rep['skipped'])
    assert rep['machine'] in r.stdout
    for run in rep['runs'].values():
        assert run['samples_per_s'] > 0 and run['peak_rss_mb'] > 100 and 0 <= run['f1'] <= 1 and run['gflops'] > 0
    assert rep['ratios']['speed_vs_fastest'] > 0
    assert 'agentflow vs the fastest Trainer' in r.stdout

def test_bench_rejects_a_folder_without_data(tmp_path):
    r = run_cli('bench', 'train', '--data', tmp_path)
    assert r.returncode == 2 and 'train.txt: no such file' in r.stderr and '\n' not in r.stderr.strip()

def test_bench_agent_reports_memory_stream_and_serving(tmp_path):
    r = run_cli('bench', 'agent', '--n', 32, '--requests', 40, '--concurrency', 4, '--json', tmp_path/'a.json')
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path/'a.json').read_text())
    assert rep['serving']['errors'] == 0 and rep['serving']['requests'] == 40 and rep['serving']['p99_ms'] > 0
    assert rep['memory']['skill_param_share'] < 0.05 and rep['stream']['ratio_known_vs_runs'] > 0
    assert 'against each skill' in r.stdout and 'serving: 40 requests' in r.stdout

def test_bench_workflow_reports_scheduler_overhead_and_resume(tmp_path):
    r = run_cli('bench', 'workflow', '--n', 80, '--epochs', 1, '--kills', 1, '--json', tmp_path/'w.json')
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path/'w.json').read_text())
    for mode in ('scheduler', 'sequential'):
        assert rep[mode]['wall_s'] > 0 and set(rep[mode]['macro_f1']) == {'airline', 'coachella', 'apple', 'deflategate'}
    assert rep['ratio'] > 0 and rep['up_to_date']['steps'] == 4 and rep['scheduler']['start_s'] > 0
    assert rep['resume']['equal'] == 1 and len(rep['resume']['runs']) == 1
    assert 'the scheduler is' in r.stdout and 'equal to the uninterrupted run' in r.stdout

def test_bench_multimodal_reports_fusion_next_to_text(tmp_path):
    r = run_cli('bench', 'multimodal', '--n', 64, '--json', tmp_path/'m.json')
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path/'m.json').read_text())
    assert set(rep['results']) == {'text', 'gated', 'cross'} and rep['n_train'] == 64
    for mode in ('gated', 'cross'):
        v = rep['results'][mode]
        assert v['samples_per_s'] > 0 and v['peak_rss_mb'] > 0 and v['speed_vs_text'] > 0 and v['memory_vs_text'] > 0
    assert 'speed vs text' in r.stdout


def test_bench_generate_runs_agentflow_trl_and_transformers(tmp_path):
    from agentflow.generate import tiny_lm
    tiny = tiny_lm(tmp_path/'tiny')
    r = run_cli('bench', 'generate', '--model', tiny, '--n', 8, '--bs', 4, '--max-length', 96, '--trl', 'default',
                '--gen-n', 2, '--max-new-tokens', 4, '--json', tmp_path/'g.json')
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path/'g.json').read_text())
    assert len(rep['train']) == 2 and 'TRL SFTTrainer default' in rep['train']
    for run in rep['train'].values(): assert run['samples_per_s'] > 0 and run['eval_loss'] > 0
    assert set(rep['generate']) == {'agentflow', 'transformers'}
    assert rep['generate']['agentflow']['tokens'] == rep['generate']['transformers']['tokens']   # greedy, same prompts
    assert 'agentflow vs the fastest TRL (TRL SFTTrainer default)' in r.stdout and 'llama.cpp left out' in r.stderr
