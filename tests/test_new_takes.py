"""What a new take takes from the dataset's takes already there (tapcheck/new_takes.py)."""

from tapcheck.datasets import Dataset

from .conftest import write_tone


def _import(run_cli, tmp_path, seed, *args):
    clip = write_tone(tmp_path / f"c{seed}.wav", seed=seed)
    return run_cli("import", clip, "--dataset", "groups", "--label", "normal", *args)


def test_a_take_without_group_joins_the_group_its_boards_takes_share(tmp_path, run_cli):
    """It got an empty group beside the board's `oak` takes, and its row read `oak/` (QA)."""
    assert _import(run_cli, tmp_path, 1, "--board", "1", "--side", "left", "--group", "oak")[0] == 0
    assert _import(run_cli, tmp_path, 2, "--board", "1", "--side", "right")[0] == 0
    assert _import(run_cli, tmp_path, 3, "--board", "2", "--side", "left")[0] == 0
    assert _import(run_cli, tmp_path, 4, "--board", "1", "--side", "left",
                   "--group", "pine")[0] == 0
    assert _import(run_cli, tmp_path, 5, "--board", "1", "--side", "left")[0] == 0  # oak/pine
    groups = [(t.board, t.group) for t in Dataset.open("groups").takes]
    assert groups == [(1, "oak"), (1, "oak"), (2, ""), (1, "pine"), (1, "")], groups
    # takes of no group (imported before groups were inherited) do not stop the inheritance
    assert _import(run_cli, tmp_path, 6, "--board", "2", "--side", "left",
                   "--group", "ash")[0] == 0
    assert _import(run_cli, tmp_path, 7, "--board", "2", "--side", "right")[0] == 0
    assert Dataset.open("groups").takes[-1].group == "ash"


def test_takes_at_another_rate_than_the_datasets_are_warned_of(tmp_path, run_cli):
    args = ("--board", "1", "--side", "left")
    assert _import(run_cli, tmp_path, 1, *args)[0] == 0
    config = tmp_path / "22k.toml"
    config.write_text("[audio]\nsr = 22050\n")
    code, out, err = _import(run_cli, tmp_path, 2, *args, "--config", config)
    assert code == 0 and "imported 1 of 1" in out, err
    root = Dataset.open("groups").root
    assert err == (f"tapcheck: warning: {root}: 1 of its 1 take(s) are stored at 44100 Hz and "
                   "these at 22050 Hz ([audio] sr); every command resamples to its own rate, but "
                   "a rate under 44100 Hz keeps less of each tap — use a config with sr = 44100 "
                   "for this dataset\n"
                   f"tapcheck: warning: {tmp_path / 'c2.wav'}: resampled from 44100 Hz to "
                   "22050 Hz\n")
    assert [t.sample_rate for t in Dataset.open("groups").takes] == [44100, 22050]
    code, _, err = _import(run_cli, tmp_path, 3, *args)  # at the rate most takes have: no word
    assert (code, err) == (0, "")
    # one stray take of another rate silenced the warning for good (QA)
    code, _, err = _import(run_cli, tmp_path, 4, *args, "--config", config)
    assert code == 0 and "2 of its 3 take(s) are stored at 44100 Hz and these at 22050 Hz" in err
