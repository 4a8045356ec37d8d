"""The keyboard of the live view: `q` quits, read between refreshes.

The terminal is put in cbreak mode (keys arrive one by one, unechoed, while Ctrl-C still raises
KeyboardInterrupt) for the live view's lifetime and restored after, whatever ends it. Without a
terminal on stdin (a pipe, a service manager) the wait is a plain sleep.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any

QUIT = {"q", "Q"}


class Keys:
    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> Keys:
        if sys.stdin.isatty():
            self._fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def quit_within(self, timeout_s: float) -> bool:
        """Waits up to `timeout_s`; True as soon as a quit key is pressed."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self._fd is None:
                time.sleep(left)
                return False
            readable, _, _ = select.select([self._fd], [], [], left)
            if readable and QUIT & set(os.read(self._fd, 32).decode(errors="replace")):
                return True
        return False
