"Shared fixtures: small real data files written from the shipped corpora, and a CLI runner"
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

AGENTFLOW = shutil.which('agentflow') or 'agentflow'   # the installed console script, as a user runs it

def run_cli(*args, timeout=900, **kwargs):
    "Run `agentflow ARGS` in a subprocess, as a user would"
    return subprocess.run([AGENTFLOW, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)

def write_conll(path, ds, extra_cols=False):
    "Write a token/tag dataset as CoNLL; with `extra_cols`, as four columns `token POS chunk tag`"
    lines = []
    for s in ds:
        lines += [f"{w} X X-NP {t}" if extra_cols else f"{w}\t{t}" for w, t in zip(s['tokens'], s['tags'])] + ['']
    Path(path).write_text('\n'.join(lines))
    return path

@pytest.fixture(scope='session')
def wnut_files(tmp_path_factory):
    "Small WNUT-2016 train/valid/test files in the four-column CoNLL layout"
    from agentflow.data import wnut16
    d, dsd = tmp_path_factory.mktemp('wnut'), wnut16()
    return dict(train=write_conll(d/'train.txt', dsd['train'].select(range(300)), True),
                valid=write_conll(d/'valid.txt', dsd['valid'].select(range(60)), True),
                test=write_conll(d/'test.txt', dsd['test'].select(range(60)), True))

@pytest.fixture(scope='session')
def ner_skill(wnut_files, tmp_path_factory):
    "A skill trained once by the CLI, shared by the tests that only read it"
    out = tmp_path_factory.mktemp('skills')/'ner'
    r = run_cli('train', '--task', 'ner', '--train', wnut_files['train'], '--valid', wnut_files['valid'],
                '--test', wnut_files['test'], '--epochs', 1, '--lr', 2e-3, '--out', out,
                '--precision', 'no')     # fp32: tests compare its saved scores with later runs to 1e-6
    assert r.returncode == 0, r.stderr
    return out

def write_plan(folder, text):
    "Write a workflow plan as `folder/plan.yaml`"
    p = Path(folder)/'plan.yaml'; p.write_text(text); return p

@pytest.fixture(scope='module')
def domains(tmp_path_factory):
    "Two CrowdFlower sentiment domains (airline, coachella) as train/test JSONL files, for the workflow's plans"
    from agentflow.data import crowdflower_files
    d = tmp_path_factory.mktemp('domains')
    for s in ('airline', 'coachella'): crowdflower_files(d, s, n_test=120)
    return d

def steps_run(stderr:str) -> set:
    "The steps a run started, from its log lines"
    return {l.split()[0] for l in stderr.splitlines() if l.split()[1:2] == ['started']}

# The longest files first: `pytest -n 2 --dist loadfile` hands whole files to the two workers in this order, so a long
# file met last would keep one worker busy while the other has finished (longest-first keeps the two ends close).
LONGEST_FIRST = ['test_generate.py', 'test_workflow.py', 'test_bench.py', 'test_engines.py', 'test_cli.py',
                 'test_multimodal.py', 'test_agent.py', 'test_bad_input.py', 'test_serve.py', 'test_serve_openai.py',
                 'test_agent_generate.py', 'test_trust.py']

def pytest_configure(config):
    if hasattr(config.option, 'loadscopereorder'): config.option.loadscopereorder = False   # xdist: keep this order, not by count

def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))     # stable: each file's tests keep their order
