"""HTTP routers, one per resource (encode, ask, knowledge_sets, health)."""
