"""examples/trees/train.py refuses bad input before training, naming the file and line, and
leaves a sensible output directory behind (stopped, diverged or run again)."""
import re

import numpy as np
import pytest

from .test_trees import _load

train = _load("train")

GOOD = "(3 (2 a) (3 b))"


def _data(tmp_path, train_lines, dev_lines=(GOOD,)):
    for name, lines in (("train", train_lines), ("dev", dev_lines), ("test", [GOOD])):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize("bad, message", [
    ("(3 (2 a) (3 b) (1 c))", "tree 1 (line 3): a node with 3 children"),
    ("(3 (2 (1 a)) (3 b))", "tree 1 (line 3): a node with 1 child "),
    ("(7 (2 a) (3 b))", "tree 1 (line 3): label 7"),
    ("(3 (2 a) (3 b)", "line 3, column"),
])
def test_a_tree_the_model_cannot_train_on_stops_the_run_with_its_file_and_line(tmp_path, bad, message):
    data = _data(tmp_path, [GOOD, "", bad])
    with pytest.raises(SystemExit, match=re.escape(message)) as info:
        train.main(["--data", str(data), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])
    assert "train.txt" in str(info.value)


def test_a_bad_dev_label_stops_the_run_before_training(tmp_path):
    data = _data(tmp_path, [GOOD], dev_lines=[GOOD, "(9 (2 a) (3 b))"])
    with pytest.raises(SystemExit, match=r"dev.txt: tree 1 \(line 2\): label 9"):
        train.main(["--data", str(data), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])


def test_a_tree_file_that_is_not_utf8_or_not_a_file_stops_the_run_naming_it(tmp_path):
    data = _data(tmp_path, [GOOD, GOOD])
    (data / "train.txt").write_bytes(b"(3 (2 a) (3 b))\n(3 (2 caf\xe9) (3 b))\n")
    with pytest.raises(SystemExit, match=r"train.txt, line 2: not UTF-8 text \(byte 0xe9\)"):
        train.main(["--data", str(data), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])
    (data / "dev.txt").unlink()
    (data / "dev.txt").mkdir()
    with pytest.raises(SystemExit, match="dev.txt is not a file"):
        train.main(["--data", str(data), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])


def test_binary_accuracy_without_a_positive_or_negative_root_is_not_a_number_shown_as_n_a(recwarn):
    forest = train.vmapper.Forest.from_ptb([GOOD.replace("(3", "(2", 1)])
    params = train.model.init_params(len(forest.vocab), 5, 6, 5, 0)
    acc = train.evaluate(forest, params, is_sst=True)
    assert np.isnan(acc["binary"]) and "binary n/a" in train.fmt(acc)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--batch-size", "0"], ["--epochs", "0"], ["--out", ""],
                                  ["--hidden", "-1"], ["--data", "/no/such/dir"],
                                  ["--data", ".", "--listops-depth", "3"]])
def test_bad_options_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        train.parse_args(argv)
    assert info.value.code == 2 and "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [(["--seed", "-1"], "below the smallest allowed value, 0"),
                                           (["--lr", "inf"], "not a finite number"),
                                           (["--l2", "nan"], "not a finite number")])
def test_numbers_out_of_range_are_argparse_errors_that_say_why(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        train.parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_an_out_directory_that_cannot_be_made_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as info:
        train.parse_args(["--out", str(tmp_path / "file" / "sub")])
    assert info.value.code == 2 and "--out" in capsys.readouterr().err


TINY = ["--epochs", "1", "--batch-size", "25", "--listops-train", "50", "--listops-eval", "20",
        "--hidden", "6", "--emb", "5", "--no-progress"]


def test_a_run_removes_an_earlier_runs_checkpoints_and_writes_strict_json(tmp_path, capsys):
    import json
    out = tmp_path / "o"
    out.mkdir()
    for k in (1, 2, 3):
        (out / f"epoch{k:02d}.npz").write_bytes(b"old")
    train.main(TINY + ["--out", str(out)])
    assert sorted(p.name for p in out.glob("epoch*.npz")) == ["epoch01.npz"]
    assert "removed 3 checkpoint(s)" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert history["args"]["epochs"] == 1 and set(history["test"]) == {"root", "nodes"}
    ckpt = np.load(out / "epoch01.npz")  # (no pickles: plain arrays, the words too)
    assert ckpt["vocab"].dtype.kind == "U" and len(ckpt["vocab"]) == ckpt["emb"].shape[0]


def test_a_diverging_loss_stops_the_run_naming_the_learning_rate(tmp_path, monkeypatch):
    monkeypatch.setattr(train.Adagrad, "step", lambda self, params, grads, scale: [
        p.fill(np.nan) for p in params.values()])
    with pytest.raises(SystemExit, match=r"the training loss is nan \(diverged\); try a smaller --lr"):
        train.main(TINY + ["--out", str(tmp_path), "--batch-size", "10"])


def test_ctrl_c_keeps_the_finished_epochs_and_exits_with_status_130(tmp_path, monkeypatch, capsys):
    real = train.evaluate
    calls = []

    def evaluate_then_interrupt(*a, **kw):
        calls.append(1)
        if len(calls) == 2:  # (during epoch 2)
            raise KeyboardInterrupt
        return real(*a, **kw)
    monkeypatch.setattr(train, "evaluate", evaluate_then_interrupt)
    with pytest.raises(SystemExit) as info:
        train.main(TINY + ["--out", str(tmp_path), "--epochs", "3"])
    assert info.value.code == 130
    assert "interrupted during epoch 2: 1 finished epoch(s)" in capsys.readouterr().out
    assert (tmp_path / "epoch01.npz").exists() and not (tmp_path / "epoch02.npz").exists()
