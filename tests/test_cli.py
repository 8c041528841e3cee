"The command line end to end: train, evaluate, predict, on real data and the shipped model"
import json
from pathlib import Path
import pytest
from conftest import run_cli, write_conll

def test_train_writes_skill_metrics_and_report(ner_skill):
    m = json.loads((ner_skill/'metrics.json').read_text())
    for split in ('valid', 'test'):
        assert {'precision', 'recall', 'f1', 'per_type'} <= set(m[split])
        assert 0 <= m[split]['f1'] <= 1
    assert m['train']['seconds'] > 0 and m['train']['samples_per_s'] > 0
    assert {'skill.json', 'adapter_config.json', 'adapter_model.safetensors', 'report.html'} <= {p.name for p in ner_skill.iterdir()}
    assert not (ner_skill/'checkpoints').exists()
    html = (ner_skill/'report.html').read_text()
    assert 'data:image/png;base64' in html and '<table' in html
    assert '<script' not in html and 'src="http' not in html and '<link' not in html   # opens offline

def test_saved_skill_loads_with_plain_peft(ner_skill):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForTokenClassification
    from agentflow.skill import Skill
    skill = Skill.load(ner_skill)
    base = AutoModelForTokenClassification.from_pretrained(skill.backbone, num_labels=len(skill.task.labels))
    plain = PeftModel.from_pretrained(base, ner_skill).eval()
    x = skill.tokenizer(['Justin Bieber in Toronto tonight'], return_tensors='pt')
    with torch.no_grad(): assert torch.allclose(plain(**x).logits, skill.model(**x).logits, atol=1e-5)

def test_evaluate_matches_train_metrics(ner_skill, wnut_files):
    r = run_cli('evaluate', ner_skill, '--test', wnut_files['test'], '--json', '--precision', 'no')   # as it was trained
    assert r.returncode == 0, r.stderr
    saved = json.loads((ner_skill/'metrics.json').read_text())['test']
    assert json.loads(r.stdout)['f1'] == pytest.approx(saved['f1'], abs=1e-6)

def test_predict_conll_gives_every_word_of_a_700_word_text_a_tag(ner_skill, tmp_path):
    words = [f'Paris{i % 7}' if i % 5 == 0 else 'said' for i in range(700)]
    (tmp_path/'long.txt').write_text(' '.join(words) + '\nJustin Bieber in Toronto\n')
    r = run_cli('predict', ner_skill, '--file', tmp_path/'long.txt', '--format', 'conll')
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.strip().split('\n\n')
    assert len(blocks) == 2
    rows = [l.split(' ') for l in blocks[0].splitlines()]
    assert [w for w, _ in rows] == words
    assert len(blocks[1].splitlines()) == 4
    assert 'Token indices sequence length' not in r.stderr     # windows handle long texts: no tokenizer warning

def test_predict_file_gives_one_tagged_line_per_word(ner_skill, wnut_files, tmp_path):
    from agentflow.data import read_conll
    sents = read_conll(wnut_files['test'], columns=(0, -1))['tokens']
    (tmp_path/'raw.txt').write_text('\n'.join(' '.join(s) for s in sents) + '\n')
    for extra in ([], ['--pretokenized']):
        r = run_cli('predict', ner_skill, '--file', tmp_path/'raw.txt', '--format', 'conll', *extra)
        assert r.returncode == 0, r.stderr
        got = [[l.rsplit(' ', 1)[0] for l in b.splitlines()] for b in r.stdout.strip().split('\n\n')]
        assert len(got) == len(sents)
        if extra: assert got == sents                            # the user's words, exactly
        else: assert sum(g == s for g, s in zip(got, sents)) >= 0.95 * len(sents), [(g, s) for g, s in zip(got, sents) if g != s]
    r = run_cli('predict', ner_skill, '--file', wnut_files['test'], '--conll', '--format', 'conll')
    assert r.returncode == 0, r.stderr
    assert [[l.rsplit(' ', 1)[0] for l in b.splitlines()] for b in r.stdout.strip().split('\n\n')] == sents
    r = run_cli('predict', ner_skill, "Bitar 's goal , 2-1 @user #tag", '--format', 'conll')
    assert [l.split(' ')[0] for l in r.stdout.split('\n') if l] == ['Bitar', "'s", 'goal', ',', '2-1', '@user', '#tag']

def test_train_into_an_empty_folder(wnut_files, tmp_path):
    out = tmp_path/'made-first'; out.mkdir()
    r = run_cli('train', '--train', wnut_files['train'], '--valid', wnut_files['valid'], '--epochs', 1, '--out', out)
    assert r.returncode == 0, r.stderr
    assert (out/'skill.json').exists() and (out/'metrics.json').exists()

def _write_types(ds, path, jsonl=False):
    "WNUT-2016 tweets labelled with the set of entity types they mention (a derived multi-label task)"
    rows = [(' '.join(t), sorted({g[2:] for g in tags if g != 'O'})) for t, tags in zip(ds['tokens'], ds['tags'])]
    if jsonl: path.write_text(''.join(json.dumps(dict(text=t, label=l)) + '\n' for t, l in rows))
    else: path.write_text('text\tlabel\n' + ''.join(f"{t}\t{'|'.join(l)}\n" for t, l in rows))
    return path

def test_train_multilabel_end_to_end(tmp_path):
    from agentflow.data import wnut16
    dsd = wnut16()
    train = _write_types(dsd['train'].select(range(300)), tmp_path/'train.tsv')
    test = _write_types(dsd['test'].select(range(80)), tmp_path/'test.jsonl', jsonl=True)
    out = tmp_path/'types'
    r = run_cli('train', '--task', 'multilabel', '--train', train, '--test', test, '--epochs', 1, '--lr', 2e-3,
                '--threshold', 0.3, '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'micro-F1' in r.stdout
    m = json.loads((out/'metrics.json').read_text())
    assert {'micro_f1', 'macro_f1', 'subset_accuracy', 'per_label'} <= set(m['test'])
    assert json.loads((out/'skill.json').read_text())['task_settings'] == {'threshold': 0.3}
    r = run_cli('evaluate', out, '--test', test, '--json')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['micro_f1'] == pytest.approx(m['test']['micro_f1'], abs=1e-6)
    r = run_cli('evaluate', out, '--test', test, '--perturb', 'lower,drop')
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines()[2:]] == ['clean', 'lower', 'word']
    r = run_cli('predict', out, 'Justin Bieber in Toronto', 'nothing here')
    assert r.returncode == 0, r.stderr
    preds = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(preds) == 2 and all(set(p['labels']) <= set(p['scores']) for p in preds)
    assert all(p['scores'][l] >= 0.3 for p in preds for l in p['labels'])
    r = run_cli('explain', out, 'Justin Bieber in Toronto', '--max-evals', 60, '--json')
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)
    assert [o['output'] for o in e['outputs']] == json.loads((out/'skill.json').read_text())['labels']
    r = run_cli('predict', out, 'hi', '--format', 'conll')
    assert r.returncode == 2 and '--format conll is not available for a multilabel skill' in r.stderr
    (tmp_path/'bad.jsonl').write_text('{"text": "a", "label": ["person"]}\n{"text": "b", "label": 7}\n')
    r = run_cli('evaluate', out, '--test', tmp_path/'bad.jsonl')
    assert r.returncode == 2 and "bad.jsonl:2 (column label): expected labels separated by '|' or a JSON list" in r.stderr

def test_predict_json_offsets_point_into_the_text(ner_skill):
    r = run_cli('predict', ner_skill, 'Justin Bieber and Selena Gomez in Toronto', 'nothing here')
    assert r.returncode == 0, r.stderr
    preds = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(preds) == 2
    for p in preds:
        for e in p['entities']: assert p['text'][e['start']:e['end']] == e['text']

def test_train_classify_on_tsv(tmp_path):
    from agentflow.data import crowdflower_sentiment
    dsd = crowdflower_sentiment()
    for split, n in (('train', 200), ('test', 60)):
        with open(tmp_path/f'{split}.tsv', 'w') as f:
            f.write('id\ttweet\tsentiment\n')
            for i, ex in enumerate(dsd[split].select(range(n))): f.write(f"{i}\t{' '.join(ex['text'].split())}\t{ex['label']}\n")
    out = tmp_path/'sentiment'
    r = run_cli('train', '--task', 'classify', '--train', tmp_path/'train.tsv', '--test', tmp_path/'test.tsv',
                '--text-col', 'tweet', '--label-col', 'sentiment', '--epochs', 1, '--out', out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert {'accuracy', 'macro_f1', 'per_label'} <= set(m['test'])
    assert 'held out' in m['train']['split']
    r = run_cli('evaluate', out, '--test', tmp_path/'test.tsv', '--text-col', 'tweet', '--label-col', 'sentiment', '--perturb', 'all')
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines()[2:]] == ['clean', 'typos', 'lower', 'upper', 'word']   # no entity swap
    r = run_cli('predict', out, 'I love this so much')
    p = json.loads(r.stdout)
    assert p['label'] in ('negative', 'neutral', 'positive') and abs(sum(p['probs'].values()) - 1) < 1e-4
    r = run_cli('explain', out, 'I love this so much', 'my flight got cancelled again', '--json', '--max-evals', 100,
                '--html', tmp_path/'why.html')
    assert r.returncode == 0, r.stderr
    exps = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(exps) == 2 and exps[0]['text'] == 'I love this so much'
    for e in exps:
        assert [o['output'] for o in e['outputs']] == ['negative', 'neutral', 'positive']
        assert abs(sum(o['value'] for o in e['outputs']) - 1) < 1e-4   # probabilities, as explained
        assert e['prediction'] in ('negative', 'neutral', 'positive')
    page = (tmp_path/'why.html').read_text()
    assert page.count('title="') > 8 and '<script' not in page
    r = run_cli('explain', out, 'hello', '--why-not', 'hello')
    assert r.returncode == 2 and 'token tasks' in r.stderr and r.stderr.count('\n') == 1

def test_full_fine_tuning_and_head_only(wnut_files, tmp_path):
    for peft, layers in (('none', 'all'), ('none', 'head')):
        out = tmp_path/f'{peft}-{layers}'
        r = run_cli('train', '--train', wnut_files['train'], '--valid', wnut_files['valid'], '--peft', peft,
                    '--train-layers', layers, '--epochs', 1, '--out', out)
        assert r.returncode == 0, r.stderr
        assert (out/'model.safetensors').exists()
        assert run_cli('predict', out, 'hello Paris').returncode == 0

def test_explain_entities_and_why_not(ner_skill, tmp_path):
    r = run_cli('explain', ner_skill, 'Justin Bieber and Selena Gomez in Toronto tonight', 'nothing to see here',
                '--why-not', 'tonight', 'see', '--max-evals', 100, '--json')
    assert r.returncode == 0, r.stderr
    first, second = [json.loads(l) for l in r.stdout.splitlines()]
    names = [o['output'] for o in first['outputs']]
    assert names[-1] == "not an entity: 'tonight'" and names[:-1] == first['prediction']
    assert second['outputs'][-1]['output'] == "not an entity: 'see'"
    r = run_cli('explain', ner_skill, 'Justin Bieber in Toronto', '--why-not', 'Paris')
    assert r.returncode == 2 and "'Paris' is not a word of any text" in r.stderr
    r = run_cli('explain', ner_skill, 'Justin Bieber in Toronto', '--max-evals', 100)
    assert r.returncode == 0 and r.stdout.startswith("'Justin Bieber in Toronto' -> ")

def test_train_with_fgm_rdrop_and_label_smoothing(wnut_files, tmp_path):
    out = tmp_path/'robust'
    r = run_cli('train', '--train', wnut_files['train'], '--valid', wnut_files['valid'], '--epochs', 1,
                '--adv', 'pgd', '--pgd-steps', 2, '--rdrop', 1, '--label-smoothing', 0.1, '--out', out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert m['train']['robust'] == dict(adv='pgd', adv_eps=0.05, pgd_alpha=0.02, pgd_steps=2, rdrop=1.0, label_smoothing=0.1)
    assert (out/'skill.json').exists()

def test_evaluate_perturb_prints_the_robustness_report(ner_skill, wnut_files, tmp_path):
    r = run_cli('evaluate', ner_skill, '--test', wnut_files['test'], '--perturb', 'all', '--train', wnut_files['train'],
                '--plot', tmp_path/'robust.png')
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[2:]
    names = ['clean', 'typos 5%', 'lower case', 'upper case', 'word dropout 10%', 'entity swap']
    assert len(rows) == len(names) and all(row.startswith(n + ' ') for row, n in zip(rows, names)), r.stdout
    assert 'entity swap: ' in r.stderr
    assert (tmp_path/'robust.png').read_bytes()[:4] == b'\x89PNG'
    r = run_cli('evaluate', ner_skill, '--test', wnut_files['test'], '--perturb', 'lower,drop', '--json', '--precision', 'no')
    rep = json.loads(r.stdout)
    assert [s['data'] for s in rep['scores']] == ['clean', 'lower case', 'word dropout 10%']
    saved = json.loads((ner_skill/'metrics.json').read_text())['test']['f1']
    assert rep['scores'][0]['f1'] == pytest.approx(saved, abs=1e-6)
    assert rep['metric'] == 'f1' and set(rep['examples']) == {'lower case', 'word dropout 10%'}

@pytest.mark.parametrize('args, needle', [
    (('--perturb', 'swap'), 'needs the training data'),
    (('--perturb', 'typo'), "unknown perturbation 'typo'"),
    (('--plot', 'x.png'), '--train and --plot go with --perturb')])
def test_bad_perturb_options_are_one_line(ner_skill, wnut_files, args, needle):
    r = run_cli('evaluate', ner_skill, '--test', wnut_files['test'], *args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count('\n') == 1, r.stderr

@pytest.mark.parametrize('args, needle', [
    (('--adv', 'fgsm'), "invalid choice: 'fgsm'"),
    (('--label-smoothing', '1'), 'label smoothing must be in [0, 1)'),
    (('--adv', 'pgd', '--pgd-steps', '0'), 'at least one step')])
def test_bad_robust_training_options_are_one_line(wnut_files, tmp_path, args, needle):
    r = run_cli('train', '--train', wnut_files['train'], '--out', tmp_path/'x', *args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert not (tmp_path/'x').exists()
