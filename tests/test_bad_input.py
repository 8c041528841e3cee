"Bad input: exit code 2, one line naming the file, line or column and what was expected; nothing saved is damaged"
import json, shutil
from pathlib import Path
import pytest
from conftest import run_cli

def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    err = r.stderr.strip()
    assert '\n' not in err and 'Traceback' not in err, err
    for n in needles: assert n in err, err
    return err

@pytest.fixture
def good(tmp_path):
    p = tmp_path/'good.txt'
    p.write_text('Justin B-person\nBieber I-person\nsings O\n\nToronto B-geo-loc\nrocks O\n')
    return p

@pytest.mark.parametrize('name,content,needles', [
    ('short.txt', 'Justin B-person\nBieber\n', ['short.txt:2', 'expected at least 2 columns']),
    ('empty.txt', '', ['empty.txt', 'empty']),
    ('tags.txt', 'Justin B-person\nBieber PERSON\n', ['tags.txt:2', "tag 'PERSON'"]),
])
def test_bad_conll_train_file(tmp_path, name, content, needles):
    (tmp_path/name).write_text(content)
    one_line_error(run_cli('train', '--train', tmp_path/name, '--out', tmp_path/'out'), *needles)
    assert not (tmp_path/'out').exists()

def test_file_in_another_encoding(tmp_path):
    (tmp_path/'latin.txt').write_bytes('Zürich B-geo-loc\nis O\n'.encode('latin-1'))
    one_line_error(run_cli('train', '--train', tmp_path/'latin.txt', '--out', tmp_path/'out'), 'latin.txt:1', 'not valid utf-8', '--encoding')

def test_label_in_test_never_seen_in_training(tmp_path, good):
    (tmp_path/'test.txt').write_text('Apple B-company\nrocks O\n\nhi O\nJustin B-person\nand O\nBieber B-musicartist\n')
    one_line_error(run_cli('train', '--train', good, '--valid', good, '--test', tmp_path/'test.txt', '--out', tmp_path/'out'),
                   'test.txt:1', "label 'B-company' was not seen in training")

def test_text_column_that_does_not_exist(tmp_path):
    (tmp_path/'t.tsv').write_text('review\tlabel\ngood\tpos\nbad\tneg\n')
    one_line_error(run_cli('train', '--task', 'classify', '--train', tmp_path/'t.tsv', '--out', tmp_path/'out'),
                   't.tsv:2', "no column 'text'", 'review')

def test_model_path_with_no_model(tmp_path, good):
    (tmp_path/'nomodel').mkdir()
    one_line_error(run_cli('train', '--train', good, '--valid', good, '--model', tmp_path/'nomodel', '--out', tmp_path/'out'),
                   str(tmp_path/'nomodel'), 'no model in this folder')

def test_bad_arguments_are_one_line(tmp_path, good):
    one_line_error(run_cli('train', '--train', good, '--out', tmp_path/'o', '--columns', 'a,b'), '--columns')
    one_line_error(run_cli('train', '--train', good), '--out')
    one_line_error(run_cli('predict', tmp_path), 'not a saved skill')
    for opts, needle in ((['--encoding', 'nosuch'], "unknown text encoding 'nosuch'"), (['--bs', 0], 'bs: must be a whole number of at least 1'),
                         (['--max-length', 100000], 'max_length 100000 is more than the backbone takes (512 positions')):
        one_line_error(run_cli('train', '--train', good, '--valid', good, '--out', tmp_path/'o', *opts), needle)
    assert not (tmp_path/'o').exists()

def test_bad_predict_inputs_are_one_line(ner_skill, tmp_path):
    one_line_error(run_cli('predict', ner_skill, '   '), 'text 1: empty, nothing to predict')
    one_line_error(run_cli('predict', ner_skill, '--file', tmp_path), str(tmp_path), 'is a folder, expected a file')
    one_line_error(run_cli('predict', ner_skill, '--file', tmp_path/'x.txt', '--encoding', 'nosuch'), "unknown text encoding 'nosuch'")

def test_training_file_from_a_pipe_and_a_long_text(tmp_path, good):
    import subprocess
    from conftest import AGENTFLOW
    r = subprocess.run(f"cat {good} | {AGENTFLOW} train --train /dev/stdin --valid {good} --epochs 1 --out {tmp_path/'piped'}", shell=True, capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path/'piped'/'skill.json').exists(), r.stderr
    rows = ''.join(f'{"word " * 30_000 if i == 0 else f"short text {i}"}\t{"pos" if i % 2 else "neg"}\n' for i in range(12))
    (tmp_path/'long.tsv').write_text('text\tlabel\n' + rows)          # a 150 KB field: over csv's usual limit
    r = run_cli('train', '--task', 'classify', '--train', tmp_path/'long.tsv', '--epochs', 1, '--out', tmp_path/'long')
    assert r.returncode == 0, r.stderr

def test_failed_run_keeps_the_earlier_skill(ner_skill, tmp_path, good):
    out = tmp_path/'skill'
    shutil.copytree(ner_skill, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path/'test.txt').write_text('Apple B-company\n')
    one_line_error(run_cli('train', '--train', good, '--valid', good, '--test', tmp_path/'test.txt', '--out', out), 'B-company')
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_cli('predict', out, 'Justin Bieber').returncode == 0

def test_out_folder_that_is_not_a_skill_is_refused(tmp_path, good):
    (tmp_path/'notes').mkdir(); (tmp_path/'notes'/'todo.txt').write_text('keep me')
    one_line_error(run_cli('train', '--train', good, '--out', tmp_path/'notes'), 'not a skill folder')
    assert (tmp_path/'notes'/'todo.txt').read_text() == 'keep me'

@pytest.mark.parametrize('name,content,needles', [
    ('quote.csv', 'text,label\n"great, really,pos\nbad,neg\nfine,pos\n', ['quote.csv:2', 'never closed']),
    ('comma.csv', 'text,label\ngreat,pos\ngood, not great,neg\n', ['comma.csv:3', 'unquoted comma']),
    ('mixed.jsonl', '{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n{"text": "c", "label": true}\n', ['mixed.jsonl:3 (column label)', 'true/false']),
    ('one.tsv', 'text\tlabel\ngreat\tpos\nfine\tpos\nsuper\tpos\n', ['one.tsv', "every example has label 'pos'"]),
])
def test_tables_that_would_train_on_wrong_data_are_refused(tmp_path, name, content, needles):
    (tmp_path/name).write_text(content)
    one_line_error(run_cli('train', '--task', 'classify', '--train', tmp_path/name, '--out', tmp_path/'out'), *needles)
    assert not (tmp_path/'out').exists()

def test_ner_file_with_only_o_tags_is_refused(tmp_path):
    (tmp_path/'o.txt').write_text('Justin O\nBieber O\n\nToronto O\nrocks O\n')
    one_line_error(run_cli('train', '--train', tmp_path/'o.txt', '--out', tmp_path/'out'), 'o.txt', "every example has tag 'O'", 'not only O')

def test_bom_and_quoted_newlines_are_read(tmp_path):
    rows = ''.join(f'"good\nday {i}",pos\n"bad, ""sad""\nday {i}",neg\n' for i in range(20))
    (tmp_path/'bom.csv').write_text('\ufefftext,label\n' + rows)
    r = run_cli('train', '--task', 'classify', '--train', tmp_path/'bom.csv', '--epochs', 1, '--out', tmp_path/'out')
    assert r.returncode == 0, r.stderr
    assert 'train 36' in r.stderr or 'of 40 training examples' in r.stderr, r.stderr
