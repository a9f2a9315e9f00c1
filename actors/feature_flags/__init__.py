"""Feature flags: live flags in a KV bucket, evaluated by actors without a restart.

:mod:`~actors.feature_flags.state` evaluates (pure); :mod:`~actors.feature_flags.client`
reads, writes (audited) and watches the bucket.
"""

from actors.feature_flags.client import FlagStore, LiveFlags
from actors.feature_flags.state import applies, share, value

__all__ = ["FlagStore", "LiveFlags", "applies", "share", "value"]
