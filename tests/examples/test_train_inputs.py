"""examples/trees/train.py refuses bad input before training, naming the file and line."""
import re

import pytest

from .test_trees import _load

train = _load("train")

GOOD = "(3 (2 a) (3 b))"


def _data(tmp_path, train_lines, dev_lines=(GOOD,)):
    for name, lines in (("train", train_lines), ("dev", dev_lines), ("test", [GOOD])):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize("bad, message", [
    ("(3 (2 a) (3 b) (1 c))", "line 3 (tree 1): a node with 3 children"),
    ("(3 (2 (1 a)) (3 b))", "line 3 (tree 1): a node with 1 children"),
    ("(7 (2 a) (3 b))", "line 3 (tree 1): label 7"),
    ("(3 (2 a) (3 b)", "line 3, column"),
])
def test_a_tree_the_model_cannot_train_on_stops_the_run_with_its_file_and_line(tmp_path, bad, message):
    data = _data(tmp_path, [GOOD, "", bad])
    with pytest.raises(SystemExit, match=re.escape(message)) as info:
        train.main(["--data", str(data), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])
    assert "train.txt" in str(info.value)


def test_a_bad_dev_label_stops_the_run_before_training(tmp_path):
    data = _data(tmp_path, [GOOD], dev_lines=[GOOD, "(9 (2 a) (3 b))"])
    with pytest.raises(SystemExit, match=r"dev.txt, line 2 \(tree 1\): label 9"):
        train.main(["--data", str(data), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--batch-size", "0"], ["--epochs", "0"],
                                  ["--hidden", "-1"], ["--data", "/no/such/dir"],
                                  ["--data", ".", "--listops-depth", "3"]])
def test_bad_options_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        train.parse_args(argv)
    assert info.value.code == 2 and "error:" in capsys.readouterr().err
