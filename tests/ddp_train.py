"""Train a small sentiment classifier with every dropout off and write its trainable weights and validation scores.

Run alone with batch 2b, or under `accelerate launch` with two processes of batch b: the two must end alike.
    python tests/ddp_train.py OUT BS
"""
import json, sys
from pathlib import Path
import torch
from datasets import DatasetDict
from agentflow.all import *

out, bs = Path(sys.argv[1]), int(sys.argv[2])
d = crowdflower_sentiment()
dsd = DatasetDict(train=d['train'].select(range(192)), valid=d['valid'].select(range(64)))
skill = Skill.new(TextClassification.from_data(dsd['train']), peft='lora', seed=0, dropout=0.)
for m in skill.model.modules():
    if isinstance(m, torch.nn.Dropout): m.p = 0.
learn = Learner(skill, skill.dataloaders(dsd, bs=bs, seed=0), lr=1e-3, quiet=True, mixed_precision='no').fit(2)   # fp32: the test is about DDP, not precision
if learn.accelerator.is_main_process:
    save_state(out/'weights.safetensors', trainable_state(skill.model))
    (out/'result.json').write_text(json.dumps(dict(processes=learn.accelerator.num_processes, steps=len(learn.recorder.lrs),
                                                   history=learn.recorder.history)))
