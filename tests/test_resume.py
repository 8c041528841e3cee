"An interrupted training run resumes from its last checkpoint"
import json, subprocess, sys, time, signal
from pathlib import Path
from conftest import run_cli, AGENTFLOW

def test_train_resumes_after_kill(wnut_files, tmp_path):
    out = tmp_path/'run'
    args = ['train', '--train', wnut_files['train'], '--valid', wnut_files['valid'], '--epochs', 3, '--patience', 5, '--out', out]
    p = subprocess.Popen([AGENTFLOW, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = out/'checkpoints'/'last.safetensors'
    t0 = time.time()
    while not last.exists() and p.poll() is None and time.time() - t0 < 600: time.sleep(0.2)
    assert last.exists(), p.communicate()[1][-2000:]
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (out/'skill.json').exists()
    r = run_cli(*args, '--resume')
    assert r.returncode == 0, r.stderr
    assert 'resumed from' in r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert m['train']['epochs'] == 3 and [h['epoch'] for h in m['train']['history']] == [0, 1, 2]
