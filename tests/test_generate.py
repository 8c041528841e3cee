"The shipped language model's one-time conversion, across processes: one converts, the others wait and load it; a killed conversion leaves no half-written model"
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest

pytest.importorskip('gguf', reason="the gen extra is not installed: pip install -e '.[gen]'")
STEM = 'SmolLM2-135M-Instruct.Q4_1'
LOAD = ("from agentflow.generate import load_lm; m, t = load_lm(); "
        "print('loaded', type(m).__name__, m.num_parameters(), t.eos_token)")

def _env(cache):
    return {**os.environ, 'AGENTFLOW_CACHE': str(cache), 'OMP_NUM_THREADS': '1'}

def _start(code, cache):
    return subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(cache))

@pytest.fixture(scope='module')
def shipped():
    from agentflow.generate import shipped_lm
    try: return shipped_lm()
    except Exception as e: pytest.skip(str(e))

def test_killed_conversion_leaves_no_model_then_two_processes_convert_once(shipped, tmp_path):
    cache = tmp_path/'cache'
    # the tokenizer alone is read without converting the weights
    r = subprocess.run([sys.executable, '-c', 'from agentflow.generate import lm_tokenizer; '
                        'print(lm_tokenizer().eos_token)'], capture_output=True, text=True, env=_env(cache), timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == '<|im_end|>', r.stderr[-2000:]
    assert (cache/'tokenizers'/STEM/'tokenizer.json').exists() and not (cache/'models'/STEM).exists()

    # a conversion killed halfway: no model folder, only its temporary folder
    p = _start(LOAD, cache)
    t0 = time.time()
    while not list((cache/'models').glob(f'.{STEM}.*.tmp')) and p.poll() is None and time.time() - t0 < 600:
        time.sleep(0.2)
    time.sleep(2)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (cache/'models'/STEM).exists()
    assert list((cache/'models').glob(f'.{STEM}.*.tmp'))

    # two processes at once: one converts (and removes the leftover), the other waits, both load the same model
    procs = [_start(LOAD, cache) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert out.startswith('loaded LlamaForCausalLM 134515008 <|im_end|>'), (out, err[-2000:])
    errs = [err for _, err in outs]
    assert sum('agentflow: converting' in e for e in errs) == 1, errs
    assert sum('waiting for another process converting the model' in e for e in errs) == 1, errs
    assert sorted(p.name for p in (cache/'models').iterdir()) == [f'.{STEM}.lock', STEM]
    assert (cache/'models'/STEM/'model.safetensors').exists()

    # later loads find it: no notice, no waiting
    r = subprocess.run([sys.executable, '-c', LOAD], capture_output=True, text=True, env=_env(cache), timeout=600)
    assert r.returncode == 0 and 'agentflow:' not in r.stderr, r.stderr[-2000:]


OPPOSITES = [('hot', 'cold'), ('big', 'small'), ('up', 'down'), ('fast', 'slow'), ('light', 'dark'), ('old', 'new'),
             ('early', 'late'), ('happy', 'sad'), ('open', 'closed'), ('full', 'empty'), ('rich', 'poor'),
             ('strong', 'weak'), ('wet', 'dry'), ('hard', 'soft'), ('high', 'low'), ('loud', 'quiet')]

def test_shipped_model_trains_evaluates_generates_and_exports_from_the_command_line(shipped, tmp_path):
    "One short real run of SmolLM2 through the CLI only: train, evaluate against the base model, generate, merge"
    from conftest import run_cli
    rows = [dict(prompt=f"One word: the opposite of '{a}'?", completion=b) for a, b in OPPOSITES]
    (tmp_path/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows[:12] * 2))
    (tmp_path/'test.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows[12:]))
    r = run_cli('train', '--task', 'generate', '--train', tmp_path/'train.jsonl', '--test', tmp_path/'test.jsonl',
                '--out', tmp_path/'sk', '--epochs', 2, '--lr', 2e-3, '--max-length', 64, '--bs', 8,
                '--eval-examples', 4, '--max-new-tokens', 4, '--gen-metrics', 'exact_match,chrf')
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'sk'/'metrics.json').read_text())['test']
    # fine-tuning helped: the loss on unseen pairs is below the base model's
    assert m['loss'] < m['base']['loss'], m
    assert {'exact_match', 'chrf', 'perplexity', 'answered'} <= set(m) and m['answered'] == 4
    meta = json.loads((tmp_path/'sk'/'skill.json').read_text())
    assert (meta['task'], meta['backbone'], meta['labels']) == ('generate', 'default', [])

    r = run_cli('evaluate', tmp_path/'sk', '--test', tmp_path/'test.jsonl', '--json')
    assert r.returncode == 0 and json.loads(r.stdout)['answered'] == 4, r.stderr[-2000:]
    r = run_cli('generate', tmp_path/'sk', "One word: the opposite of 'hot'?", '--max-new-tokens', 4)
    answer = json.loads(r.stdout)
    assert r.returncode == 0 and answer['tokens'] <= 4 and answer['finish'] in ('stop', 'length'), r.stderr[-2000:]

    r = run_cli('export', tmp_path/'sk', '--merge', tmp_path/'merged')
    assert r.returncode == 0, r.stderr[-2000:]
    code = ("import sys, json, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
            "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1]); "
            "x = t.apply_chat_template([dict(role='user', content=sys.argv[2])], add_generation_prompt=True, "
            "return_tensors='pt', return_dict=True); "
            "g = m.generate(**x, max_new_tokens=4, do_sample=False); "
            "print(json.dumps(t.decode(g[0, x['input_ids'].shape[1]:], skip_special_tokens=True)))")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path/'merged'), "One word: the opposite of 'hot'?"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == answer['text']     # plain transformers, the same answer
