"Files from others never run code: crafted pickles in every weights and checkpoint file agentflow reads are refused in one line"
import json, shutil
from pathlib import Path
import pytest, torch
from conftest import run_cli
from test_bad_input import one_line_error

class Payload:
    "Unpickled, this creates the file `mark`: proof that the file's code ran"
    def __init__(self, mark): self.mark = Path(mark)
    def __reduce__(self): return (Path.touch, (self.mark,))

def craft(path, mark):
    "A pickle at `path` that runs code when loaded without `weights_only`"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'model': Payload(mark)}, path)
    return path

def test_the_payload_is_real(tmp_path):
    torch.load(craft(tmp_path/'x.pt', tmp_path/'ran'), weights_only=False)
    assert (tmp_path/'ran').exists()

@pytest.mark.parametrize('name', ['last.safetensors', 'last.pt'])
def test_resume_from_a_crafted_checkpoint_is_refused(wnut_files, tmp_path, name):
    out, mark = tmp_path/'run', tmp_path/'ran'
    craft(out/'checkpoints'/name, mark)
    r = run_cli('train', '--train', wnut_files['valid'], '--epochs', 1, '--out', out, '--resume')
    one_line_error(r, str(out/'checkpoints'/name))
    assert not mark.exists() and not (out/'skill.json').exists()

@pytest.mark.parametrize('name', ['adapter_model.safetensors', 'tokenizer.json', 'skill.json'])
def test_a_skill_with_a_crafted_file_is_refused(ner_skill, tmp_path, name):
    skill, mark = tmp_path/'skill', tmp_path/'ran'
    shutil.copytree(ner_skill, skill)
    craft(skill/name, mark)
    r = run_cli('predict', skill, 'Justin Bieber sings in Toronto')
    one_line_error(r, str(skill/name))
    assert not mark.exists()

def test_a_backbone_with_crafted_pickled_weights_is_refused(wnut_files, tmp_path):
    from agentflow.core import default_backbone
    model, mark = tmp_path/'model', tmp_path/'ran'
    shutil.copytree(default_backbone(), model)
    for w in model.glob('*.safetensors'): w.unlink()
    craft(model/'pytorch_model.bin', mark)
    r = run_cli('train', '--train', wnut_files['valid'], '--model', model, '--epochs', 1, '--out', tmp_path/'out')
    one_line_error(r, str(model))
    assert not mark.exists() and not (tmp_path/'out').exists()

def test_a_skill_whose_backbone_is_elsewhere_never_downloads(ner_skill, tmp_path):
    skill = tmp_path/'skill'
    shutil.copytree(ner_skill, skill)
    meta = json.loads((skill/'skill.json').read_text()); meta['backbone'] = 'someone/ner-backbone'
    (skill/'skill.json').write_text(json.dumps(meta))
    one_line_error(run_cli('predict', skill, 'Justin Bieber', timeout=300),
                   "backbone 'someone/ner-backbone' is neither a folder nor in this machine's Hugging Face cache")
