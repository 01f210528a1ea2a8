"""What the terminal shows: numbers as a reader reads them (tapcheck/console.py)."""


def test_a_stated_rate_reads_as_people_write_it():
    """`:.0%` printed far = 0.999 as 100% and far = 0.0001 (the lowest allowed) as 0%."""
    from tapcheck.console import percent

    assert [percent(r) for r in (0.05, 0.02, 0.005, 0.999, 0.0001, 0.5)] == [
        "5%", "2%", "0.5%", "99.9%", "0.01%", "50%"]
