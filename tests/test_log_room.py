"""Room on the inspection log's disk (tapcheck/log_room.py): nothing deletes old clips, and a
full disk stopped a session mid-shift (QA)."""

from __future__ import annotations

import os
import shutil

from tapcheck import log_room
from tapcheck.log_room import CLIP_BYTES, room_warning, tap_bytes


def test_a_tap_is_measured_by_the_newest_days_clips(tmp_path):
    assert tap_bytes(tmp_path) == CLIP_BYTES  # no clips yet: the measured default
    for day, size in (("2026-12-01", 100), ("2026-12-07", 3000)):
        folder = tmp_path / "clips" / day
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"0{i}0000.000-board01.wav").write_bytes(b"x" * (size + i))
    (tmp_path / "clips" / "notes").mkdir()  # not a day's folder
    assert tap_bytes(tmp_path) == 3001


def test_a_disk_without_room_for_a_shift_is_told_with_what_to_delete(tmp_path):
    """Real free space, asked of the disk: room for a shift here, and not for more taps than
    the disk could hold."""
    assert room_warning(tmp_path, taps=1) is None
    free = shutil.disk_usage(tmp_path).free
    said = room_warning(tmp_path / "not-yet" / "log", taps=free)  # made later: its disk
    assert said is not None and said.startswith(
        f"{tmp_path / 'not-yet' / 'log'}: {free / 1e9:.1f} GB free, room for about "
        f"{free // CLIP_BYTES} more taps' clips (160 kB each), fewer than a shift's {free}")
    assert said.endswith(f"delete old days' clips (their rows stay in the log): "
                         f"{tmp_path / 'not-yet' / 'log' / 'clips'}/YYYY-MM-DD, or move the log "
                         "($TAPCHECK_INSPECTIONS)")


def test_doctor_notes_a_log_disk_without_room_for_a_shift(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path / "insp"))
    monkeypatch.setattr(log_room, "SHIFT_TAPS", 10 ** 18)  # more than any disk holds
    code, out, err = run_cli("doctor")
    notes = [ln.strip() for ln in out.splitlines()
             if ln.strip().startswith("note") and "free" in ln]
    assert len(notes) == 1 and "room for about" in notes[0], out
    monkeypatch.setattr(log_room, "SHIFT_TAPS", 1)
    code, out, err = run_cli("doctor")
    assert not any("room for about" in line for line in out.splitlines()), out
    assert not os.path.exists(tmp_path / "insp")  # doctor only asks
