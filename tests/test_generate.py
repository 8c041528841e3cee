"The shipped language model's one-time conversion, across processes: one converts, the others wait and load it; a killed conversion leaves no half-written model"
import os, signal, subprocess, sys, time
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
    r = subprocess.run([sys.executable, '-c', 'from agentflow.generate import load_tokenizer; '
                        'print(load_tokenizer().eos_token)'], capture_output=True, text=True, env=_env(cache), timeout=600)
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
