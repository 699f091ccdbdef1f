"""A Lambda-like context object for handlers the local runtime invokes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from stek.local.template import ACCOUNT_ID


@dataclass
class LocalContext:
    """What handlers read from Lambda's context: request id, names and remaining time."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    @classmethod
    def for_function(cls, function_name: str, timeout_s: int, memory_mb: int) -> LocalContext:
        context = cls(
            function_name, memory_mb, timeout_s, log_group_name=f"/aws/lambda/{function_name}"
        )
        context._deadline = time.monotonic() + timeout_s
        return context

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
