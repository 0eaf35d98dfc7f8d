"""Issue 21: diagnose on recurrent and attention models; sections that do not apply say why."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from landscape.cli import main

SMALL = ["--quick", "--samples", "64", "--points-1d", "5", "--points-2d", "3", "--quiet"]


class RowLSTM(nn.Module):
    """An LSTM reading an 8x8 digit row by row (8 steps of 8 features), then a linear head."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.lstm = nn.LSTM(8 * in_channels, 12, batch_first=True)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(len(x), x.shape[-2], -1))
        return self.head(out[:, -1])


class TokenAttention(nn.Module):
    """Token ids (8 per example, read as integers) -> Embedding -> one scaled-dot-product
    attention -> an attention-pooling score Linear(width, 1) -> a linear head; returns a dict."""

    def __init__(self, num_classes=2, in_channels=1, vocab=17, width=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.score = nn.Linear(width, 1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        h = self.embed(x.long().reshape(len(x), -1))
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(q, k, v)
        pooled = (torch.softmax(self.score(h), dim=1) * h).sum(1)
        return {"logits": self.head(pooled)}


def lstm(num_classes=10, in_channels=1):
    return RowLSTM(num_classes, in_channels)


def attention(num_classes=2, in_channels=1):
    return TokenAttention(num_classes, in_channels)


def fit(net, x, y, logits=lambda out: out):
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(25):
        loss = F.cross_entropy(logits(net(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("seq")
    d = load_digits()
    x = torch.tensor(d.images[:240] / 16, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:240])
    np.savez(root / "rows.npz", x_train=x[:160].numpy(), y_train=y[:160].numpy(), x_test=x[160:].numpy(),
             y_test=y[160:].numpy())
    torch.save(fit(lstm(), x[:160], y[:160]).state_dict(), root / "lstm.pt")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 17, (200, 8), generator=gen)
    labels = (ids[:, :4].sum(1) > ids[:, 4:].sum(1)).long()
    np.savez(root / "ids.npz", x=ids.numpy(), y=labels.numpy())   # one split, integer ids
    torch.save(fit(attention(), ids, labels, lambda out: out["logits"]).state_dict(), root / "attention.pt")
    return root


def test_diagnose_an_lstm_says_what_it_does_not_cover(data, tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["diagnose", "--model", "test_diagnose_models:lstm", "--checkpoint", str(data / "lstm.pt"),
                 "--data", str(data / "rows.npz"), "--out", str(out), *SMALL[:-1]]) == 0
    progress = capsys.readouterr().out
    assert "[1/6] measures: lstm" in progress and "[2/6] curvature: lstm" in progress and "[6/6] figures" in progress
    assert "diagnose: Test accuracy: lstm " in progress
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert [layer["name"] for layer in run["layers"]] == ["head.weight"]
    assert "not covered: lstm (LSTM)" in run["notes"][0]
    assert any("lstm (LSTM)" in f for f in summary["findings"])
    assert run["top_eigenvalue"] is not None and run["basin_width"] is not None
    assert summary["findings"][0].startswith("Test accuracy: lstm ")


def test_diagnose_token_attention_with_dict_output_on_one_split(data, tmp_path):
    out = tmp_path / "d"
    assert main(["diagnose", "--model", "test_diagnose_models:attention", "--checkpoint",
                 str(data / "attention.pt"), "--data", str(data / "ids.npz"), "--output", "logits",
                 "--out", str(out), *SMALL]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert summary["settings"]["output"] == "logits"
    assert run["test_acc"] is None and run["train_acc"] is not None      # one split: no test numbers
    assert [layer["name"] for layer in run["layers"]] == ["qkv.weight", "head.weight"]
    notes = " ".join(run["notes"])
    assert "embed (Embedding)" in notes and "single filter, no angle): score.weight" in notes
    # curvature either computed or said not to be; never a crash
    assert run["top_eigenvalue"] is not None or any("curvature not computed" in n for n in run["notes"])
    text = (out / "report.html").read_text()
    assert "Test accuracy: attention n/a (no such split)" in text


def test_a_run_trained_on_a_one_split_npz_and_a_models_file_with_reg(data, tmp_path):
    run = tmp_path / "run"
    d = np.load(data / "rows.npz")
    np.savez(tmp_path / "one.npz", x=d["x_train"], y=d["y_train"])
    assert main(["train", "--model", "cnn", "--model-option", "channels=[4,8]", "--data", str(tmp_path / "one.npz"),
                 "--epochs", "2", "--quiet", "--out", str(run)]) == 0
    listing = tmp_path / "models.txt"
    listing.write_text(f"--model cnn --model-option channels=[4,8] --checkpoint {run / 'model.pt'} "
                       f"--data {tmp_path / 'one.npz'} --name said --seed 7 --reg mma --reg wd:1e-4\n")
    out = tmp_path / "d"
    assert main(["diagnose", str(run), "--models-file", str(listing), "--out", str(out), *SMALL]) == 0
    summary = json.loads((out / "summary.json").read_text())
    first, said = summary["runs"]
    assert first["test_acc"] is None and first["epochs"] == 2 and first["basin_width"] is not None
    assert said["regularizers"] == ["mma", "wd:1e-4"] and said["seed"] == 7
    assert said["train_loss"] == pytest.approx(first["train_loss"], rel=1e-9)
    drawn = [png for section in summary["sections"].values() for png, _ in section if png]
    assert "learning_curves.png" in drawn and "compare_1d.png" in drawn


def test_numbers_are_written_before_the_figures_and_a_failing_figure_loses_none(data, tmp_path, monkeypatch):
    import analysis.report as report
    from analysis.summary import from_checkpoint

    def broken(*args, **kwargs):
        raise ValueError("Data cannot be log-scaled because all values are <= 0.")

    monkeypatch.setattr(report, "landscape_figures", broken)
    model = from_checkpoint("test_diagnose_models:lstm", data / "lstm.pt", str(data / "rows.npz"))
    page = report.diagnose(models=[model], out=tmp_path / "d", quick=True, samples=64, points_1d=5, points_2d=3,
                           progress=False)
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["runs"][0]["test_acc"] is not None and summary["runs"][0]["basin_width"] is not None
    (entry,) = summary["sections"]["Loss landscape"]
    assert entry[0] is None and "the figure failed (ValueError: Data cannot be log-scaled" in entry[1]
    assert "Not drawn: the figure failed" in page.read_text()


@pytest.mark.parametrize("output, words", [("0", "predictions of shape (10,) for 2 examples (output 0)"),
                                           ("logits", "output='logits': the model's output has no such part")])
def test_an_output_that_does_not_select_predictions_is_one_line(data, tmp_path, capsys, output, words):
    # a plain tensor output indexed by 0 would be the first example's logits: refused, not evaluated
    assert main(["diagnose", "--model", "test_diagnose_models:lstm", "--checkpoint", str(data / "lstm.pt"),
                 "--data", str(data / "rows.npz"), "--output", output, "--out", str(tmp_path / "d"), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err


class Recurrent(nn.Module):
    """No Conv or Linear layer at all: an RNN whose hidden size is the number of classes."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.rnn = nn.RNN(8 * in_channels, num_classes, batch_first=True)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(len(x), x.shape[-2], -1))
        return out[:, -1]


def recurrent(num_classes=10, in_channels=1):
    return Recurrent(num_classes, in_channels)


def test_a_model_without_conv_or_linear_layers_says_why(data, tmp_path):
    torch.manual_seed(0)
    torch.save(recurrent().state_dict(), tmp_path / "rnn.pt")
    out = tmp_path / "d"
    assert main(["diagnose", "--model", "test_diagnose_models:recurrent", "--checkpoint", str(tmp_path / "rnn.pt"),
                 "--data", str(data / "rows.npz"), "--out", str(out), *SMALL]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["layers"] == [] and run["min_angle"] is None
    assert run["notes"] == ["filter geometry and weight spectra read Conv and Linear layers only; not covered: "
                            "rnn (RNN)", "filter geometry does not apply: the model has no Conv or Linear layer"]
    assert summary["sections"]["Filter geometry"][0][1].startswith("Not drawn: no layer with two or more filters")
    assert run["top_eigenvalue"] is not None
