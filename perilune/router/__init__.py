"""The semantic router (UniRoute): embedder, profiles, decision, build, eval. See README "Semantic router"."""
