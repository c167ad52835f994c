"""Counterfactual probes: prompts where only a name or a stated identity changes, sent to the deployed model."""
