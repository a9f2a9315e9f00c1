"""Why a task is refused: the one exception of the task manager's pure modules.

Hierarchy::

    TroupeError
    └── TaskRejected(code, detail)   the workflow ends ``rejected`` with
                                     reason ``"<code>: <detail>"``

``code`` is one of :data:`protocols.tasks.REJECTION_CODES`, so clients can
branch on it; ``detail`` names the step, parameter or file at fault.
"""

from __future__ import annotations

from actors.runtime.errors import TroupeError
from protocols.tasks import RejectionCode

__all__ = ["TaskRejected"]


class TaskRejected(TroupeError):
    """A task (or a template) failed validation.

    Args:
        code: machine-readable reason.
        detail: what exactly is wrong, in words.
    """

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: RejectionCode = code
        self.detail = detail

    @property
    def reason(self) -> str:
        """The workflow's rejection reason, ``"<code>: <detail>"``."""
        return f"{self.code}: {self.detail}"
