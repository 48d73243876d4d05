"""Discovery: the shape of a monolith's sessions, learnt from samples of its exports.

Teams migrating a real monolith often do not know what its sessions hold.
This package looks at sessions as the monolith's export hook hands them out
(docs/protocol.md section 4: JSON, always -- nothing native such as a pickle
or a PHP-serialised blob is ever decoded here; a monolith whose hook cannot
export JSON is not one Strangler can bridge) and proposes the ``session:``
block of config.yaml.

- ``shapes``  -- ``SessionShapes`` folds samples ``(session id, time, data)``
                 into statistics per key path: JSON types, presence, how often
                 the value changed within one session, sizes, whether strings
                 look like ids. Values are never kept: only shapes, counts and
                 keyed digests (to see a change) that never leave the process.
- ``propose`` -- ``propose`` turns those statistics into a profile block, the
                 YAML a person pastes into config.yaml, with the figures behind
                 every guess in comments.

Pure like the rest of ``adapters``: no I/O, no clock (the caller says when each
sample was taken). The gateway samples what its bridge already exports
(``gateway.session.sampler``); ``strangler session discover`` samples through
the hook or asks a running gateway.
"""

from adapters.discovery.propose import Proposal, propose
from adapters.discovery.shapes import SessionShapes
from adapters.discovery.summary import ANY, PathSummary, Summary

__all__ = ["ANY", "PathSummary", "Proposal", "SessionShapes", "Summary", "propose"]
