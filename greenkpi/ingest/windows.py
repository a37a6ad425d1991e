"""Windows of one device on the time line: hour pieces and the overlap guard (issue 14 item 7).

A window that straddles an hour boundary is stored as one row per hour it touches, its energy
(and each share's, and its idle seconds) split in proportion to time, so every hour's rollup gets
exactly its part and a window never lands wholly in its start hour. The last piece takes the
remainder, so the pieces sum to what was sent exactly. Rates (power, utilization, memory,
temperature) are the window's and stay as they are on each piece.

Two windows of one device must not overlap, or their energy would count twice. An exact replay
(same start and end) is a duplicate and stays a no-op; any other overlap, with a window of the
same batch or one already stored, is refused (a 400 naming the sample and the window it meets).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

HOUR = timedelta(hours=1)
_START, _END, _ENERGY, _IDLE, _SHARES = 1, 2, 3, 12, 14  # positions in columns.SAMPLE_COLUMNS


def hour_pieces(row: tuple) -> list[tuple]:
    """The row itself when it lies within one UTC hour, else one row per hour it touches."""
    start, end = row[_START], row[_END]
    boundary = start.replace(minute=0, second=0, microsecond=0) + HOUR
    if end <= boundary:
        return [row]
    cuts = [start]
    while boundary < end:
        cuts.append(boundary)
        boundary += HOUR
    cuts.append(end)
    duration = (end - start).total_seconds()
    energy, idle, shares = row[_ENERGY], row[_IDLE], row[_SHARES]
    pieces = []
    energy_left, idle_left = energy, idle
    shares_left = [share["e"] for share in shares] if shares else []
    for k in range(len(cuts) - 1):
        last = k == len(cuts) - 2
        fraction = (cuts[k + 1] - cuts[k]).total_seconds() / duration
        piece_energy = energy_left if last else energy * fraction
        energy_left -= 0.0 if last else piece_energy
        piece_idle = None
        if idle is not None:
            piece_idle = idle_left if last else idle * fraction
            idle_left -= 0.0 if last else piece_idle
        piece_shares = None
        if shares:
            piece_shares = []
            for i, share in enumerate(shares):
                part = shares_left[i] if last else share["e"] * fraction
                shares_left[i] -= 0.0 if last else part
                piece_shares.append({**share, "e": part})
        piece = list(row)
        piece[_START], piece[_END] = cuts[k], cuts[k + 1]
        piece[_ENERGY], piece[_IDLE], piece[_SHARES] = piece_energy, piece_idle, piece_shares
        pieces.append(tuple(piece))
    return pieces


Window = tuple[int, datetime, datetime]  # device id, start, end


def overlaps(
    rows: Sequence[tuple], stored: Iterable[Window]
) -> tuple[list[tuple[int, Window]], set[tuple[int, datetime]]]:
    """(row index, the window it overlaps) for each row meeting another window (of the batch or
    stored) other than an exact replay of it; and the (device, start) keys that are exact replays
    of stored windows (duplicates: already there, nothing to write)."""
    by_device: dict[int, list[tuple[datetime, datetime, int]]] = {}
    for device, start, end in stored:
        by_device.setdefault(device, []).append((start, end, -1))
    for i, row in enumerate(rows):
        by_device.setdefault(row[0], []).append((row[_START], row[_END], i))
    found: list[tuple[int, Window]] = []
    replays: set[tuple[int, datetime]] = set()
    for device, windows in by_device.items():
        if len(windows) < 2:
            continue
        # stored before new at equal starts, so a replay meets its stored twin first
        windows.sort(key=lambda w: (w[0], w[2]))
        reach_end, reach = windows[0][1], windows[0]
        for window in windows[1:]:
            start, end, index = window
            if start < reach_end:
                twin = reach[0] == start and reach[1] == end
                if twin and reach[2] == -1 and index >= 0:
                    replays.add((device, start))
                elif (twin and reach[2] >= 0 and index >= 0) or index >= 0:
                    found.append((index, (device, reach[0], reach[1])))
                elif reach[2] >= 0:
                    found.append((reach[2], (device, start, end)))
            if end > reach_end:
                reach_end, reach = end, window
    return found, replays


def stored_window_bounds(rows: Sequence[tuple], max_window_s: float) -> tuple[Any, Any, Any]:
    """The batch's devices and the start range that can hold a window overlapping one of its
    rows: starts after (first start - longest window) and before the last end."""
    devices = sorted({row[0] for row in rows})
    low = min(row[_START] for row in rows) - timedelta(seconds=max_window_s)
    high = max(row[_END] for row in rows)
    return devices, low, high
