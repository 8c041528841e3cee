"Several processes through accelerate: two processes of batch b train as one process of batch 2b; the CLI hands over to accelerate launch"
import json, os, subprocess, sys, time
from pathlib import Path
import torch
from conftest import run_cli, AGENTFLOW
from agentflow.callbacks import load_state

HERE = Path(__file__).parent
LAUNCH = ['accelerate', 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}

def test_two_processes_of_batch_b_end_where_one_of_batch_2b_does(tmp_path):
    for name, cmd in (('one', [sys.executable, HERE/'ddp_train.py', tmp_path/'one', '16']),
                      ('two', [*LAUNCH, HERE/'ddp_train.py', tmp_path/'two', '8'])):
        (tmp_path/name).mkdir()
        r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=ENV, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
    one, two = (json.loads((tmp_path/n/'result.json').read_text()) for n in ('one', 'two'))
    assert (one['processes'], two['processes']) == (1, 2) and one['steps'] == two['steps'] == 24
    wa, wb = (load_state(tmp_path/n/'weights.safetensors') for n in ('one', 'two'))
    assert wa.keys() == wb.keys()
    moved = max((wa[k] - torch.zeros_like(wa[k])).abs().max().item() for k in wa if 'lora_B' in k)
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert moved > 1e-3 and diff < 1e-4, (moved, diff)                    # trained, and to the same weights
    for ra, rb in zip(one['history'], two['history']):
        assert abs(ra['macro_f1'] - rb['macro_f1']) < 1e-6 and abs(ra['valid_loss'] - rb['valid_loss']) < 1e-4, (ra, rb)

def test_cli_trains_with_two_processes_and_resumes(wnut_files, tmp_path):
    out = tmp_path/'skill'
    args = ['train', '--train', wnut_files['train'], '--valid', wnut_files['valid'], '--max-train', 160, '--epochs', 3,
            '--patience', 3, '--processes', 2, '--out', out]
    p = subprocess.Popen([AGENTFLOW, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while not (out/'checkpoints'/'last.safetensors').exists() and p.poll() is None and time.time() - t0 < 900: time.sleep(0.2)
    assert (out/'checkpoints'/'last.safetensors').exists(), p.communicate()[1][-3000:]
    subprocess.run(['pkill', '-9', '-f', str(out)]); p.wait()              # the launcher and both training processes
    r = run_cli(*args, '--resume', env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count('resumed from') == 1 and r.stderr.count('epoch 3/3') == 1, r.stderr      # one process reports
    assert r.stdout.count('saved the skill') == 1
    m = json.loads((out/'metrics.json').read_text())
    assert [h['epoch'] for h in m['train']['history']] == [0, 1, 2] and not (out/'checkpoints').exists()
