"""HTTP routers, one per resource (encode, ask, knowledge, health)."""
