"""Where the tests find the shared official region code lists (CC0, ../shared/data/areacodes; never copied in)."""

from pathlib import Path

AREACODES = Path(__file__).resolve().parents[2] / "shared" / "data" / "areacodes" / "data"
"""One ``<year>.txt`` per year, ``code name`` per line."""
