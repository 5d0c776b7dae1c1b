"""Cache-aware routing: requests that share cached work (a conversation's KV, an image's embedding) go to the
replica that holds it while it is not much busier than the rest. The Serve router is
`services.routing.affinity_router`; this package's front door imports no Ray."""

from services.routing.affinity_key import conversation_affinity_key
from services.routing.replica_choice import preferred_replica, ranked_replicas

__all__ = ["conversation_affinity_key", "preferred_replica", "ranked_replicas"]
