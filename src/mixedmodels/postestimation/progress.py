"""Progress bars for long post-estimation work (profiles, bootstrap, all_fit, cross-validation,
cAIC): tqdm, shown only where someone is watching and the work is long.

``progress="auto"`` (the default of the functions that use it) shows a bar only when the output
is interactive (a terminal, or Jupyter) and the work is expected to take more than about 2 s,
which is judged after the first steps: a bar appears once the elapsed time and the rate say
the total will pass 2 s. ``progress=True`` always shows one, ``progress=False`` never. Without
tqdm installed (``pip install mixedmodels[tables]``) a plain text bar goes to stderr.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "interactive"]

#: work expected to last longer than this (seconds) gets a bar under "auto"
THRESHOLD_S = 2.0


def interactive() -> bool:
    """Whether someone is likely watching: stderr is a terminal, or this runs in Jupyter."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """A progress bar over ``total`` steps; ``update()`` after each, ``close()`` at the end (or
    use it as a context manager).

    Parameters
    ----------
    total : int
    desc : str
        The bar's label.
    progress : {"auto", True, False}
    """

    def __init__(self, total: int, desc: str, progress: bool | str = "auto"):
        if progress not in (True, False, "auto", None):
            raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
        self.total, self.desc, self.done = int(total), desc, 0
        self.start = time.perf_counter()
        self.mode = "auto" if progress in ("auto", None) else bool(progress)
        self.enabled = self.mode is True or (self.mode == "auto" and interactive())
        self.bar = None
        self._text = False
        if self.mode is True and self.total > 0:  # a total still unknown (0) opens with add_total
            self._open()

    def _open(self) -> None:
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, initial=self.done, leave=True)
        except ImportError:
            self._text = True

    def update(self, k: int = 1) -> None:
        self.done += k
        if not self.enabled:
            return
        if self.bar is None and not self._text:
            elapsed = time.perf_counter() - self.start
            expected = elapsed / max(self.done, 1) * self.total
            if self.mode == "auto" and (expected <= THRESHOLD_S or self.done >= self.total):
                return
            self._open()
            if self.bar is not None:  # it opens at self.done, this update included
                return
        if self.bar is not None:
            self.bar.update(k)
        elif self._text:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.done}/{self.total} {elapsed:.1f}s")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def add_total(self, k: int) -> None:
        """``k`` more steps than announced (a Spark pass whose next stage starts)."""
        self.total += int(k)
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()
        elif self.mode is True and not self._text:
            self._open()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
