"""The comparison's HTML page (tapcheck/report.py)."""


def test_board_means_read_on_their_side_of_the_threshold(tmp_path):
    """QA: means of 1.00453, 1.00457 and 1.00509 over a threshold of 1.004 (boards flagged 5 of
    6 and 4 of 4) read "1: 1, 2: 1, 3: 1.01" at 3 significant figures."""
    from tapcheck.report import page

    row = {"model": "ae", "summary": "an autoencoder", "scorer": "recon",
           "threshold": 1.004008, "board_means": {"1": 1.004527, "2": 1.004565, "3": 1.00509,
                                                  "4": 0.5}}
    path = page(tmp_path, title="t", meta={}, tables="", rows=[row],
                figures={"models": {}, "roc": "roc.png", "training": "training.png"})
    text = path.read_text()
    assert "threshold 1.004 " in text
    assert "Mean score per test board: 1: 1.005, 2: 1.005, 3: 1.005, 4: 0.5." in text

    # a mean next to the threshold: both with the digits that tell them apart
    row = {**row, "threshold": 1.00412, "board_means": {"1": 1.0040, "2": 1.0043}}
    text = page(tmp_path, title="t", meta={}, tables="", rows=[row],
                figures={"models": {}, "roc": "roc.png", "training": "training.png"}).read_text()
    assert "threshold 1.0041 " in text and "board: 1: 1.004, 2: 1.0043." in text
