"Output that survives faults: a locked --out, a read-only or full destination, SIGTERM, a loss that becomes NaN"
import json, resource, shutil, signal, subprocess, time
from pathlib import Path
from conftest import run_cli, AGENTFLOW
from test_bad_input import one_line_error

def _train_args(files, out, *more):
    return ['train', '--train', files['train'], '--valid', files['valid'], '--max-train', 120, *more, '--out', out]

def _wait_for(path, p, seconds=600):
    t0 = time.time()
    while not Path(path).exists() and p.poll() is None and time.time() - t0 < seconds: time.sleep(0.1)
    assert Path(path).exists(), p.communicate()[1][-2000:]

def test_a_second_run_into_the_same_out_is_refused(wnut_files, tmp_path):
    out = tmp_path/'skill'
    p = subprocess.Popen([AGENTFLOW, *map(str, _train_args(wnut_files, out, '--epochs', 3))], stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path/'.skill.lock', p)
    one_line_error(run_cli(*_train_args(wnut_files, out, '--epochs', 1)), str(out), 'another agentflow run', str(p.pid))
    assert p.wait() == 0 and (out/'skill.json').exists()
    assert sorted(q.name for q in tmp_path.iterdir()) == ['skill']        # no lock file, no temporary folder left

def test_sigterm_keeps_the_last_epoch_and_says_how_to_resume(wnut_files, tmp_path):
    out = tmp_path/'skill'
    p = subprocess.Popen([AGENTFLOW, *map(str, _train_args(wnut_files, out, '--epochs', 4, '--patience', 4))], stderr=subprocess.PIPE, text=True)
    _wait_for(out/'checkpoints'/'last.safetensors', p)
    p.send_signal(signal.SIGTERM)
    err = p.communicate()[1].strip().splitlines()[-1]
    assert p.returncode == 143 and 'terminated' in err and '--resume' in err and str(out/'checkpoints') in err, err
    assert not (out/'skill.json').exists() and (out/'checkpoints'/'last.safetensors').exists()
    r = run_cli(*_train_args(wnut_files, out, '--epochs', 4, '--patience', 4), '--resume')
    assert r.returncode == 0 and 'resumed from' in r.stderr, r.stderr
    assert not (out/'checkpoints').exists() and not list(tmp_path.glob('.*'))    # a finished skill holds no checkpoints

def test_read_only_destination_is_found_before_training(wnut_files):
    one_line_error(run_cli(*_train_args(wnut_files, '/proc/agentflow-test/skill', '--epochs', 1)), '/proc/agentflow-test/skill', 'cannot write here')

def test_full_disk_keeps_the_earlier_skill(ner_skill, wnut_files, tmp_path):
    out = tmp_path/'skill'
    shutil.copytree(ner_skill, out)
    before = {q.name: q.read_bytes() for q in out.iterdir()}
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))    # a file-size limit stands in for a full disk
    r = run_cli(*_train_args(wnut_files, out, '--epochs', 1), preexec_fn=limit)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith('agentflow: error:'), r.stderr[-2000:]
    assert 'disk is full' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert str(tmp_path) in r.stderr.strip().splitlines()[-1], r.stderr[-500:]      # the line names what could not be written
    assert {q.name: q.read_bytes() for q in out.iterdir()} == before
    assert sorted(q.name for q in tmp_path.iterdir()) == ['skill']

def test_a_loss_that_becomes_nan_stops_and_saves_nothing(wnut_files, tmp_path):
    r = run_cli(*_train_args(wnut_files, tmp_path/'skill', '--epochs', 2, '--lr', 1e6))
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert 'epoch 1, batch' in last and 'no longer a number' in last and 'nothing was saved' in last, last
    assert not (tmp_path/'skill'/'skill.json').exists()
