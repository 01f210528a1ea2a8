"""What the terminal shows: numbers as a reader reads them (tapcheck/console.py)."""


def test_a_stated_rate_reads_as_people_write_it():
    """`:.0%` printed far = 0.999 as 100% and far = 0.0001 (the lowest allowed) as 0%."""
    from tapcheck.console import percent

    assert [percent(r) for r in (0.05, 0.02, 0.005, 0.999, 0.0001, 0.5)] == [
        "5%", "2%", "0.5%", "99.9%", "0.01%", "50%"]


def test_a_tiny_threshold_keeps_two_significant_digits_on_every_line():
    """A 1-epoch model's threshold of 1.26e-05 printed "score 0.00000  threshold 0.00001" for a
    score of 3.9e-06 and "0.000006  threshold 0.000013" on the next line (QA)."""
    from tapcheck.console import score_pair

    assert score_pair(3.87e-06, 1.26e-05) == ("0.000004", "0.000013")
    assert score_pair(6.1e-06, 1.26e-05) == ("0.000006", "0.000013")
    assert score_pair(0.45, 0.09) == ("0.4500", "0.0900")  # the usual four decimals stand
    assert score_pair(0.00332, 0.003251) == ("0.00332", "0.00325")  # widened to tell them apart
    assert score_pair(0.5, 0.0) == ("0.5000", "0.0000")
