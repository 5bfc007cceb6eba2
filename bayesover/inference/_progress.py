"""The progress lines `bo.sample` prints to stderr between compiled chunks."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints `bayesover: C chain(s) on D device(s): <event> [seconds since start]`."""

    def __init__(self, enabled: bool, num_draws: int, num_chains: int, num_devices: int):
        self.enabled = enabled
        self.num_draws = num_draws
        self.start = time.perf_counter()
        self.prefix = f"bayesover: {num_chains} chain(s) on {num_devices} device(s)"

    def _print(self, text: str) -> None:
        if self.enabled:
            print(
                f"{self.prefix}: {text} [{time.perf_counter() - self.start:.1f} s]",
                file=sys.stderr,
                flush=True,
            )

    def warmup_done(self, num_warmup: int) -> None:
        self._print(f"warm-up of {num_warmup} steps done")

    def resumed(self, draws_done: int) -> None:
        self._print(f"resumed from checkpoint at draw {draws_done}/{self.num_draws}")

    def chunk_done(self, draws_done: int) -> None:
        filled = 20 * draws_done // self.num_draws
        bar = "#" * filled + "-" * (20 - filled)
        self._print(
            f"[{bar}] draws {draws_done}/{self.num_draws} ({100 * draws_done // self.num_draws}%)"
        )
