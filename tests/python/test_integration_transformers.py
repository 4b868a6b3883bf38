"""EdgewiseCallback in a real Hugging Face Trainer: a tiny BERT built from a config (no
downloads), trained with SGD for 2 epochs on CPU, a real sidecar.

The numbers must reach TensorBoard through the Trainer's own reporter (read back from the
event file) and ``state.log_history``; the last λ_max must equal the top eigenvalue of the
probe's dense Gauss–Newton matrix at the trained parameters, built here from torch.func
Jacobians of the HF model called the ordinary way, with its 2-D attention mask (so the
adapter's packing and mask conversion are checked too).
"""

from __future__ import annotations

import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("tensorboard")
from torch.func import functional_call, jacrev  # noqa: E402

from edgewise.integrations.transformers import EdgewiseCallback  # noqa: E402
from edgewise.monitor import EdgewiseWarning  # noqa: E402


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n=32, length=6, vocab=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, vocab, (n, length), generator=g)
        self.mask = torch.ones_like(self.ids)
        self.mask[::3, 4:] = 0  # some padded samples
        self.labels = (self.ids[:, 0] % 3).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=8, hidden_size=2, num_hidden_layers=1, num_attention_heads=1,
                                     intermediate_size=2, max_position_embeddings=8, num_labels=3)
    return transformers.BertForSequenceClassification(config)


def dense_ggn_lambda_max(model, batch):
    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = list(params)
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def logits(p, i):
        one = {k: v[i : i + 1] for k, v in inputs.items()}
        return functional_call(model, p, (), one).logits[0]

    blocks = []
    for i in range(len(batch["labels"])):
        jac = jacrev(logits)(params, i)
        j = torch.cat([jac[n].reshape(3, -1) for n in names], dim=1).double()
        prob = torch.softmax(logits(params, i).double(), 0)
        blocks.append(j.T @ (torch.diag(prob) - torch.outer(prob, prob)) @ j)
    return float(torch.linalg.eigvalsh(sum(blocks) / len(blocks))[-1])


def test_a_trainer_run_logs_rounds_to_tensorboard_and_log_history(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = Tokens()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2, optim="sgd", learning_rate=0.05,
        logging_steps=100, report_to=["tensorboard"], save_strategy="no",
        use_cpu=True, disable_tqdm=True,
    )
    model = tiny_bert()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    callback = EdgewiseCallback(probe_size=8, tol=1e-9, max_basis=128, bootstrap=0, console=False).attach(trainer)  # d = 99: full space
    with warnings.catch_warnings():
        warnings.simplefilter("error", EdgewiseWarning)  # SGD and attach(): no warning expected
        trainer.train()

    rounds = [h for h in trainer.state.log_history if "edgewise/eta_star" in h]
    assert [h["step"] for h in rounds] == [4, 8]  # 32 samples / 8 per step, at each epoch's end
    history = callback.monitor.history
    assert [r.eta_star for r in history] == [h["edgewise/eta_star"] for h in rounds]
    assert (history[0].batch_size, history[0].n, history[0].m) == (8, 32, 8)
    x, y = callback.monitor.probe  # drawn from the training set and collated by the Trainer's loader
    probe = {**x, "labels": y}
    assert all(bool((data.ids == row).all(1).any()) for row in probe["input_ids"])
    assert rounds[-1]["edgewise/lambda_max"] == pytest.approx(dense_ggn_lambda_max(model, probe), rel=1e-6)

    (event_file,) = tmp_path.rglob("events.out.tfevents.*")  # the Trainer's own TensorBoard reporter
    events = EventAccumulator(str(event_file)).Reload()
    tags = events.Tags()["scalars"]
    tag = next(t for t in tags if t.endswith("edgewise/eta_star"))
    scalars = events.Scalars(tag)
    assert [s.step for s in scalars] == [4, 8]
    assert [s.value for s in scalars] == pytest.approx([r.eta_star for r in history], rel=1e-6)


def test_every_n_steps_without_attach_still_fills_log_history_and_warns(tmp_path):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2, optim="sgd", learning_rate=0.05,
        logging_steps=100, report_to=["tensorboard"], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    callback = EdgewiseCallback(probe_size=8, every_n_steps=3, max_basis=128, bootstrap=0, console=False)
    trainer = transformers.Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(), callbacks=[callback])
    with pytest.warns(EdgewiseWarning, match="attach"):
        trainer.train()
    rounds = [h for h in trainer.state.log_history if "edgewise/eta_star" in h]
    assert [h["step"] for h in rounds] == [3, 6]
    assert [h["edgewise/eta_star"] for h in rounds] == [r.eta_star for r in callback.monitor.history]
